"""What the chart shows of each resource: small header summaries, written in the
same transaction as the resource (docs/adr/0008-the-chart-in-one-query.md).

Keys: `0#Patient` (demographics), `1#<Type>#<id>` (an active problem, allergy,
medication, flag, plan). A summary holds header fields only; a resource that is
no longer active takes its entry away (summary None).
"""

from __future__ import annotations

from typing import Any

from functions.engine.registry import ChartEntry, active_key, owner_key

INACTIVE_CONDITION = frozenset({"inactive", "remission", "resolved"})
INACTIVE_ALLERGY = frozenset({"inactive", "resolved"})
NOT_TRUE = frozenset({"refuted", "entered-in-error"})


def code_of(concept: Any) -> str | None:
    """The first code of a CodeableConcept (a status coding)."""
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def concept_header(concept: Any) -> dict[str, Any]:
    """system, code, display of the first coding, and the text."""
    out: dict[str, Any] = {}
    if not isinstance(concept, dict):
        return out
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    if codings:
        out.update({k: codings[0][k] for k in ("system", "code", "display") if k in codings[0]})
    if isinstance(concept.get("text"), str):
        out["text"] = concept["text"]
    return out


def _name(body: dict[str, Any]) -> str:
    for name in body.get("name") or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str):
            return str(name["text"])
        given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
        return " ".join(x for x in (given, name.get("family")) if isinstance(x, str) and x)
    return ""


DEMOGRAPHICS = owner_key("Patient")  # the Patient declaration's chart hook writes it


def patient_entry(resource_id: str, body: dict[str, Any] | None) -> ChartEntry:
    if body is None:
        return ChartEntry(DEMOGRAPHICS, None)
    summary = {"resourceType": "Patient", "id": resource_id, "name": _name(body),
               "birthDate": body.get("birthDate"), "gender": body.get("gender")}  # fmt: skip
    return ChartEntry(DEMOGRAPHICS, summary)


def _active(body: dict[str, Any] | None, inactive: frozenset[str]) -> bool:
    if body is None:
        return False
    clinical = code_of(body.get("clinicalStatus"))
    verification = code_of(body.get("verificationStatus"))
    return clinical not in inactive and verification not in NOT_TRUE


def condition_entry(resource_id: str, body: dict[str, Any] | None) -> ChartEntry:
    key = active_key("Condition", resource_id)
    if body is None or not _active(body, INACTIVE_CONDITION):
        return ChartEntry(key, None)
    onset = body.get("onsetDateTime") or (body.get("onsetPeriod") or {}).get("start")
    summary = {"resourceType": "Condition", "id": resource_id,
               "code": concept_header(body.get("code")),
               "clinicalStatus": code_of(body.get("clinicalStatus")), "onset": onset}  # fmt: skip
    return ChartEntry(key, summary)


def allergy_entry(resource_id: str, body: dict[str, Any] | None) -> ChartEntry:
    key = active_key("AllergyIntolerance", resource_id)
    if body is None or not _active(body, INACTIVE_ALLERGY):
        return ChartEntry(key, None)
    summary = {"resourceType": "AllergyIntolerance", "id": resource_id,
               "code": body.get("code"),
               "clinicalStatus": code_of(body.get("clinicalStatus")),
               "verificationStatus": code_of(body.get("verificationStatus")),
               "criticality": body.get("criticality")}  # fmt: skip
    return ChartEntry(key, summary)
