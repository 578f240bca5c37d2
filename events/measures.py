"""Events of the measurement-based care workflow (catalogue: events/README.md).

Both are staged in the same transaction as the QuestionnaireResponse they come
from (functions/measures/service.py). They carry ids and codes only: never an
answer, a total or a band.
"""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class ScoreRecorded(DomainEvent):
    """A response was scored: its Observation and chart ring slot were written."""

    source: ClassVar[str] = "emr.measures"
    detail_type: ClassVar[str] = "score.recorded"

    patient_id: str
    response_id: str
    observation_id: str
    instrument: str  # "phq-9", "gad-7", "c-ssrs-screener"


class SafetyRiskIdentified(DomainEvent):
    """A safety rule fired on a response: an active suicide-risk Flag was raised."""

    source: ClassVar[str] = "emr.measures"
    detail_type: ClassVar[str] = "safety.risk-identified"

    patient_id: str
    flag_id: str
    response_id: str
    observation_id: str
    instrument: str
    reason: str  # the rule's code, e.g. "phq9-item9-positive"
