"""moa.pipeline."""
