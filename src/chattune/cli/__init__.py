"""The `chattune` command: one module per noun, each a thin layer over the SDK."""
