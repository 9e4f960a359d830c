"""moa.dev."""
