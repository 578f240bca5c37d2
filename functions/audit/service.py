"""Reading the audit trail: records rendered as FHIR R4 AuditEvent resources."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from functions.common.audit import AuditDraft
from functions.common.errors import Invalid, Issue
from models import audit as audit_store
from models import keys
from models.audit import SearchAuditItem
from models.items import AuditItem

ACTION_CODES = {
    "create": "C",
    "read": "R",
    "search": "E",
    "history": "R",
    "update": "U",
    "delete": "D",
}
OUTCOME_CODES = {
    "success": "0",
    "invalid": "4",
    "not-found": "4",
    "gone": "4",
    "conflict": "4",
    "denied": "8",
    "unauthenticated": "8",
    "error": "12",
}
SUPPORTED = {"patient", "_count", "_cursor"}


@dataclass(frozen=True)
class AuditQuery:
    patient_id: str
    cursor: str | None


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]
    next_cursor: str | None


def parse(params: dict[str, str]) -> AuditQuery:
    unknown = set(params) - SUPPORTED
    if unknown:
        raise Invalid(
            Issue(
                "invalid",
                "Supported parameters: patient, _count, _cursor.",
                [f"AuditEvent.search.{sorted(unknown)[0]}"],
            )
        )
    patient = (params.get("patient") or "").removeprefix("Patient/")
    if not patient or not keys.valid_id(patient):
        raise Invalid(
            Issue("required", "patient=<Patient id> is required.", ["AuditEvent.search.patient"])
        )
    return AuditQuery(patient, params.get("_cursor"))


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError):
        raise Invalid(
            Issue("invalid", "_cursor is not valid.", ["AuditEvent.search._cursor"])
        ) from None


def patient_audit(tenant: str, audit: AuditDraft, query: AuditQuery, count: int) -> AuditPage:
    audit.resource_type, audit.patient_id = "AuditEvent", query.patient_id
    items, before = audit_store.for_patient(
        tenant, query.patient_id, count, _decode_cursor(query.cursor)
    )
    audit.result_count = len(items)
    cursor = base64.urlsafe_b64encode(before.encode()).decode().rstrip("=") if before else None
    return AuditPage([to_audit_event(i) for i in items], cursor)


def _patients_of(item: AuditItem) -> list[str]:
    """The patients the record is about: a search record names every one it
    returned; its copy in one patient's trail, and any other record, one."""
    if isinstance(item, SearchAuditItem):
        return [str(p) for p in item.patient_ids]
    return [item.patient_id] if item.patient_id else []


def to_audit_event(item: AuditItem) -> dict[str, Any]:
    verb = item.action.rsplit(".", 1)[-1]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": item.audit_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "urn:emr:action", "code": item.action}],
        "action": ACTION_CODES.get(verb, "E"),
        "recorded": item.at,
        "outcome": OUTCOME_CODES.get(item.outcome, "4"),
        "outcomeDesc": f"{item.outcome} ({int(item.status)})",
        "agent": [
            {
                "who": {
                    "identifier": {"system": "urn:emr:user", "value": item.actor},
                    "display": item.actor_name,
                },
                "role": [{"text": r} for r in item.roles],
                "requestor": True,
                "network": {"address": item.source_ip, "type": "2"} if item.source_ip else None,
            }
        ],
        "source": {
            "observer": {"display": "emr-api"},
            "type": [{"code": "3", "display": "Web Server"}],
        },
        "entity": [
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                },
            }
            for patient_id in _patients_of(item)
        ],
        "extension": [{"url": "urn:emr:request-id", "valueString": item.request_id}],
    }
    if item.resource_type and item.resource_id:
        event["entity"].append({"what": {"reference": f"{item.resource_type}/{item.resource_id}"}})
    agent = event["agent"][0]
    event["agent"][0] = {k: v for k, v in agent.items() if v is not None}
    if item.purpose:
        event["purposeOfEvent"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": item.purpose
        }]}]  # fmt: skip
    if item.overrides:
        rules = ",".join(str(o) for o in item.overrides)
        event["extension"].append({"url": "urn:emr:overridden-rules", "valueString": rules})
    return event
