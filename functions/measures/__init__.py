"""Measurement-based care: PHQ-9, GAD-7 and C-SSRS screener definitions, scoring and trends.

Pure domain logic (no HTTP, no storage): `instruments` holds the FHIR Questionnaires,
`scoring` validates a QuestionnaireResponse and derives the Observation and safety Flag,
`trends` follows totals over time. docs/measures.md describes the rules and their sources.
"""
