"""The encounter workflow: statuses, documented times and service types."""
