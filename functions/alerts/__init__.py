"""Safety alerts: a risky screen -> a task in the responsible clinician's work queue,
an SNS message without PHI, acknowledgement with a note, escalation (docs/alerts.md)."""
