"""aer-search: search for compressed neural networks that stay robust."""

__version__ = "0.1.0"
