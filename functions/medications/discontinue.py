"""`$discontinue`: stop, cancel or complete an active or held order, with a reason.

One transaction: the order's next version (status and `statusReason`),
conditional on it still being the version read and active or on hold; its chart
entry removed (the declaration's chart hook); a `MedicationDiscontinued` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.common.caller import Caller
from functions.common.errors import Invalid, Issue
from functions.engine import registry, service
from functions.medications.rules import ACTIVE, DISCONTINUED, STATES
from models.resources import Stored
from models.uow import UnitOfWork

DISCONTINUE = {s: STATES.operation("$discontinue", ACTIVE, s) for s in sorted(DISCONTINUED)}
REASON_MAX = 1000  # characters of a discontinuation reason


def _decl() -> registry.ResourceType:
    return registry.require("MedicationRequest")


@dataclass(frozen=True)
class Discontinuation:
    reason: str
    status: str = "stopped"


def _parameter_value(param: dict[str, Any], kind: str, where: str) -> str:
    value = param.get(kind)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(Issue("value", f"{where} needs a non-empty {kind}.", [where]))
    return value.strip()


def parse_discontinue(body: dict[str, Any]) -> Discontinuation:
    """A `Parameters` body: `reason` (valueString, required, at most 1,000
    characters) and `status` (valueCode stopped | cancelled | completed)."""
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter"), list):
        raise Invalid(
            Issue(
                "structure",
                "$discontinue takes a Parameters resource with "
                "parameter reason (and optionally status).",
                ["Parameters"],
            )
        )
    given: dict[str, str] = {}
    for i, param in enumerate(body["parameter"]):
        where = f"Parameters.parameter[{i}]"
        name = param.get("name") if isinstance(param, dict) else None
        kind = {"reason": "valueString", "status": "valueCode"}.get(str(name))
        if kind is None or name in given:
            raise Invalid(Issue("structure", f"{where}: only one reason and one status are "
                                "taken.", [f"{where}.name"]))  # fmt: skip
        given[str(name)] = _parameter_value(param, kind, f"{where}.{kind}")
    return _discontinuation(given)


def _discontinuation(given: dict[str, str]) -> Discontinuation:
    where = "Parameters.parameter"
    if "reason" not in given:
        raise Invalid(Issue("required", "$discontinue needs the parameter reason.", [where]))
    if len(given["reason"]) > REASON_MAX:
        raise Invalid(Issue("value", f"reason is at most {REASON_MAX} characters.", [where]))
    status = given.get("status", "stopped")
    if status not in DISCONTINUED:
        allowed = " | ".join(sorted(DISCONTINUED))
        raise Invalid(Issue("value", f"status must be {allowed}.", [where]))
    return Discontinuation(given["reason"], status)


def current_order(caller: Caller, resource_id: str) -> Stored:
    """The order an operation is about (404/410 otherwise): one GetItem."""
    return service.read_for_change(caller, _decl(), resource_id)


def discontinue(caller: Caller, current: Stored, request: Discontinuation) -> Stored:
    """One transaction: the order's next version with the status and its reason,
    conditional on it still being that version and active or on hold (409
    otherwise); its chart entry removed; a `MedicationDiscontinued` event."""
    from events import outbox
    from events.medications import MedicationDiscontinued

    decl = _decl()
    body = {**(current.resource or {}), "status": request.status,
            "statusReason": {"text": request.reason}}  # fmt: skip
    uow = UnitOfWork()
    new = service.stage_replace(uow, caller, decl, current, body, DISCONTINUE[request.status])
    a = new.address
    outbox.stage(uow, MedicationDiscontinued(
        tenant=a.tenant, actor=caller.actor, request_id=caller.request_id,
        medication_request_id=a.resource_id, patient_id=a.patient_id or "",
        resource_version=new.version, status=request.status,
    ))  # fmt: skip
    service.commit(caller, decl, uow, 200)
    return new
