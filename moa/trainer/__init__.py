"""moa.trainer."""
