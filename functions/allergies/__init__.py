"""Allergies and intolerances: AllergyIntolerance rules (substance, criticality, reactions)."""
