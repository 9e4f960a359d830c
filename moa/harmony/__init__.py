"""moa.harmony."""
