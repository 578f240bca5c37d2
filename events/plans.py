"""Events of the plans workflow (catalogue: events/README.md)."""

from __future__ import annotations

from typing import ClassVar

from events.envelope import DomainEvent


class PlanSigned(DomainEvent):
    """A treatment or safety plan was signed and became active: ids and codes only.

    `replaced_plan_id` names the plan the signed one revoked (a revision), if any."""

    source: ClassVar[str] = "emr.plans"
    detail_type: ClassVar[str] = "careplan.signed"

    plan_id: str
    patient_id: str
    plan_version: int
    kind: str | None = None  # treatment-plan | safety-plan
    signer_id: str  # the signer's Practitioner id
    provenance_id: str
    replaced_plan_id: str | None = None
