"""moa.datagen."""
