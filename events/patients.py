"""Events of the patients workflow (catalogue: events/README.md)."""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class PatientChanged(DomainEvent):
    patient_id: str
    resource_version: int


class PatientCreated(PatientChanged):
    source: ClassVar[str] = "emr.patients"
    detail_type: ClassVar[str] = "patient.created"


class PatientUpdated(PatientChanged):
    source: ClassVar[str] = "emr.patients"
    detail_type: ClassVar[str] = "patient.updated"


class PatientDeleted(PatientChanged):
    source: ClassVar[str] = "emr.patients"
    detail_type: ClassVar[str] = "patient.deleted"
