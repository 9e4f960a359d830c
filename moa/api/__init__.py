"""moa.api."""
