"""Behaviour shared by every FHIR resource type (validation, ...)."""
