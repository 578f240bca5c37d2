"""Events of the medications workflow (catalogue: events/README.md).

Ids and codes only: the order, its patient (opaque ids), the RxNorm ingredient
code and DEA schedule, the discontinuing status. Never dosage text, reasons or
names.
"""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class MedicationEvent(DomainEvent):
    medication_request_id: str
    patient_id: str
    resource_version: int


class MedicationPrescribed(MedicationEvent):
    """A new order was stored (with the create, in its transaction)."""

    source: ClassVar[str] = "emr.medications"
    detail_type: ClassVar[str] = "medication.prescribed"

    rxcui: str | None = None  # the RxNorm ingredient of the formulary
    schedule: str | None = None  # DEA schedule II..V, None when not controlled
    overridden: bool = False  # the order carries an override reason


class MedicationDiscontinued(MedicationEvent):
    """An order was stopped, cancelled or completed by `$discontinue`."""

    source: ClassVar[str] = "emr.medications"
    detail_type: ClassVar[str] = "medication.discontinued"

    status: str  # stopped | cancelled | completed
