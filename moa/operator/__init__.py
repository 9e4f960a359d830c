"""moa.operator."""
