"""`python -m search.cli` runs the `search` command."""

import sys

from search.cli import main

sys.exit(main())
