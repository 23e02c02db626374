"""File names of a packed model, in a module without torch: reading a study (which
names these files) must not pay torch's import."""

WEIGHTS = "model.safetensors"  # the packed weights, safetensors (never a pickle)
