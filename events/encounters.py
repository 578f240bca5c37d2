"""Events of the encounter workflow beyond the generic `encounter.*` (catalogue:
events/README.md).

`EncounterFinished` is staged in the same transaction as the version that made
the encounter finished (created finished, or updated from another status; not on
a correction of an encounter already finished): functions/encounters/events.py.
Ids only: never the service, the period or any participant's name.
"""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class EncounterFinished(DomainEvent):
    """The visit took place and its documented time is complete: billing may start."""

    source: ClassVar[str] = "emr.encounters"
    detail_type: ClassVar[str] = "encounter.finished"

    encounter_id: str
    patient_id: str
    encounter_version: int  # the version that became finished
