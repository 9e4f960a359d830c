"""moa.serving."""
