"""A ledger entry as a FHIR R4 AuditEvent (ids and codes only: the ledger holds no names).

A `phi.accessed` entry reads like the live trail's AuditEvent of the same request
(same id: the audit id); any other event (a note signed, a prescription, ...) is
an AuditEvent of type `urn:emr:event-type|<name>`. Every one carries its place in
the chain (`urn:emr:ledger-seq`, `urn:emr:ledger-hash`), so a result can be
checked against a verified chain or an archived segment.
"""

from __future__ import annotations

from typing import Any

from functions.audit.service import ACTION_CODES, OUTCOME_CODES
from models.ledger import decode

PHI_ACCESSED = "phi.accessed"
FHIR_OUTCOMES = frozenset({"0", "4", "8", "12"})
VERB_CODES = {"created": "C", "updated": "U", "deleted": "D"}
NOT_ENTITIES = frozenset(
    {"event_id", "request_id", "audit_id", "patient_id", "resource_id", "tenant", "actor"}
)
EXT = "urn:emr:"


def name_of(detail_type: str) -> str:
    """`note.signed.v1` -> `note.signed`."""
    name, _, major = detail_type.rpartition(".v")
    return name if name and major.isdigit() else detail_type


def _outcome(value: Any) -> str:
    text = str(value)
    return text if text in FHIR_OUTCOMES else OUTCOME_CODES.get(text, "4")


def _entities(detail: dict[str, Any]) -> list[dict[str, Any]]:
    patients = [detail.get("patient_id"), *(detail.get("patient_ids") or [])]
    out: list[dict[str, Any]] = [
        {"what": {"reference": f"Patient/{p}"}, "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"}}
        for p in dict.fromkeys(p for p in patients if isinstance(p, str))
    ]  # fmt: skip
    if detail.get("resource_type") and detail.get("resource_id"):
        out.append({"what": {"reference": f"{detail['resource_type']}/{detail['resource_id']}"}})
    for field, value in sorted(detail.items()):
        if field.endswith("_id") and field not in NOT_ENTITIES and isinstance(value, str):
            out.append({"what": {"identifier": {"system": f"{EXT}{field}", "value": value}}})
    return out


def _agent(detail: dict[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": f"{EXT}user", "value": str(detail.get("actor"))}},
        "requestor": True,
    }
    if detail.get("roles"):
        agent["role"] = [{"text": str(r)} for r in detail["roles"]]
    if detail.get("source_ip"):
        agent["network"] = {"address": str(detail["source_ip"]), "type": "2"}
    return agent


def _kind(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    if name == PHI_ACCESSED:
        action = str(detail.get("action", ""))
        return {
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            },
            "subtype": [{"system": f"{EXT}action", "code": action}],
            "action": ACTION_CODES.get(action.rsplit(".", 1)[-1], "E"),
            "outcome": _outcome(detail.get("outcome")),
        }
    return {
        "type": {"system": f"{EXT}event-type", "code": name},
        "action": VERB_CODES.get(name.rsplit(".", 1)[-1], "E"),
        "outcome": "0",
    }


def audit_event(text: str, entry_hash: str) -> dict[str, Any]:
    body = decode(text)
    event: dict[str, Any] = body["event"]
    detail: dict[str, Any] = event.get("detail") or {}
    name = name_of(str(event["detail_type"]))
    resource: dict[str, Any] = {"resourceType": "AuditEvent", "id": event["event_id"]}
    resource.update(_kind(name, detail))
    resource["period"] = {"start": event["occurred_at"], "end": event["occurred_at"]}
    resource["recorded"] = body["recorded"]
    resource["agent"] = [_agent(detail)]
    resource["source"] = {"observer": {"display": str(event["source"])}}
    resource["entity"] = _entities(detail)
    if detail.get("purpose"):
        resource["purposeOfEvent"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": str(detail["purpose"])}]}]  # fmt: skip
    extensions = [
        {"url": f"{EXT}event-type", "valueString": str(event["detail_type"])},
        {"url": f"{EXT}ledger-seq", "valueInteger": int(body["seq"])},
        {"url": f"{EXT}ledger-hash", "valueString": entry_hash},
    ]
    if detail.get("request_id"):
        extensions.append({"url": f"{EXT}request-id", "valueString": str(detail["request_id"])})
    if detail.get("overrides"):
        rules = ",".join(str(o) for o in detail["overrides"])
        extensions.append({"url": f"{EXT}overridden-rules", "valueString": rules})
    resource["extension"] = extensions
    return resource
