"""The problem list: Condition rules (ICD-10-CM diagnosis codes)."""
