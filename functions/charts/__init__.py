"""The charts workflow."""
