"""The admin workflow."""
