"""moa.languages."""
