"""The encounter workflow of a behavioral-health visit.

Status: planned -> arrived -> in-progress -> finished, and cancelled from any
status before finished. A finished or cancelled encounter stays so (a correction
of a finished one keeps it finished). Invalid changes are a 409, checked inside
the write's own transaction (functions/engine/registry.py, StateMachine), so two
front-desk users cannot race an encounter past its rules. An encounter may be
deleted only while planned or cancelled: one that took place is corrected, not
removed.

Documented time: in-progress needs `period.start`; finished needs `period.start`
and `period.end`, the end not before the start (billing counts minutes from it).

Service types (`serviceType`, this server's code system, SERVICE_TYPES): intake
evaluation, individual, family and group psychotherapy, medication management,
crisis. A coding of that system with another code is refused; other systems
(e.g. SNOMED CT from imported records) are kept as they are.
"""

from __future__ import annotations

from typing import Any

from functions.common.errors import Issue
from functions.engine.registry import StateMachine
from functions.engine.values import date_range

SERVICE_TYPE_SYSTEM = "https://emr.example/fhir/CodeSystem/service-type"
SERVICE_TYPES = {
    "intake-evaluation": "Psychiatric intake evaluation",
    "psychotherapy-individual": "Individual psychotherapy",
    "psychotherapy-family": "Family psychotherapy",
    "psychotherapy-group": "Group psychotherapy",
    "medication-management": "Medication management",
    "crisis": "Crisis intervention",
}

# What billing reads from an encounter besides its service and period (docs/billing.md).
EXT = "https://emr.example/fhir/StructureDefinition/"
MDM_URL = EXT + "mdm-level"  # valueCode: medical decision making of an E/M visit
MDM_LEVELS = ("straightforward", "low", "moderate", "high")
PSYCHOTHERAPY_MINUTES_URL = EXT + "psychotherapy-minutes"  # valueInteger, 1..1440
INTERACTIVE_COMPLEXITY_URL = EXT + "interactive-complexity"  # valueBoolean
PATIENT_PRESENT_URL = EXT + "patient-present"  # valueBoolean (family psychotherapy)
BILLING_EXTENSIONS = {
    MDM_URL: "valueCode",
    PSYCHOTHERAPY_MINUTES_URL: "valueInteger",
    INTERACTIVE_COMPLEXITY_URL: "valueBoolean",
    PATIENT_PRESENT_URL: "valueBoolean",
}

_ONLY = frozenset
STATES = StateMachine(
    element="status",
    transitions={
        "planned": _ONLY({"planned", "arrived", "cancelled"}),
        "arrived": _ONLY({"arrived", "in-progress", "cancelled"}),
        "in-progress": _ONLY({"in-progress", "finished", "cancelled"}),
        "finished": _ONLY({"finished"}),
        "cancelled": _ONLY({"cancelled"}),
    },
    # a visit is scheduled ahead, walked in, or documented afterwards
    initial=_ONLY({"planned", "arrived", "in-progress", "finished"}),
    deletable=_ONLY({"planned", "cancelled"}),
)


def _time_issues(body: dict[str, Any]) -> list[Issue]:
    status = body.get("status")
    raw = body.get("period")
    period: dict[str, Any] = raw if isinstance(raw, dict) else {}
    start, end = period.get("start"), period.get("end")
    issues = []
    if status in ("in-progress", "finished") and not start:
        issues.append(
            Issue(
                "required", f"An encounter {status} needs period.start.", ["Encounter.period.start"]
            )
        )
    if status == "finished" and not end:
        issues.append(
            Issue("required", "A finished encounter needs period.end.", ["Encounter.period.end"])
        )
    lo = date_range(start) if isinstance(start, str) else None
    hi = date_range(end) if isinstance(end, str) else None
    if lo is not None and hi is not None and hi.lo < lo.lo:
        issues.append(
            Issue("invariant", "period.end is before period.start.", ["Encounter.period.end"])
        )
    return issues


def _service_type_issues(body: dict[str, Any]) -> list[Issue]:
    service = body.get("serviceType")
    codings = service.get("coding") if isinstance(service, dict) else None
    issues = []
    for i, coding in enumerate(codings if isinstance(codings, list) else []):
        if not isinstance(coding, dict) or coding.get("system") != SERVICE_TYPE_SYSTEM:
            continue
        if coding.get("code") not in SERVICE_TYPES:
            known = ", ".join(SERVICE_TYPES)
            issues.append(
                Issue("code-invalid", f"Unknown service type; this system's codes: {known}.",
                      [f"Encounter.serviceType.coding[{i}].code"])
            )  # fmt: skip
    return issues


def _billing_value_ok(kind: str, value: Any) -> bool:
    if kind == "valueCode":
        return value in MDM_LEVELS
    if isinstance(value, bool) or kind == "valueBoolean":
        return isinstance(value, bool) and kind == "valueBoolean"
    return isinstance(value, int) and 1 <= value <= 1440


def _billing_value_issue(url: str, ext: dict[str, Any], where: str) -> Issue | None:
    kind = BILLING_EXTENSIONS[url]
    if _billing_value_ok(kind, ext.get(kind)):
        return None
    what = {"valueCode": " of " + ", ".join(MDM_LEVELS), "valueInteger": " from 1 to 1440"}
    return Issue("value", f"Needs {kind}{what.get(kind, '')}.", [f"{where}.{kind}"])


def _billing_issues(body: dict[str, Any]) -> list[Issue]:
    """Each billing extension at most once, with its value type and range."""
    issues, seen = [], set()
    for i, ext in enumerate(body.get("extension") or []):
        url = ext.get("url") if isinstance(ext, dict) else None
        if url not in BILLING_EXTENSIONS:
            continue
        where = f"Encounter.extension[{i}]"
        issue = (Issue("structure", "Given more than once.", [where]) if url in seen
                 else _billing_value_issue(url, ext, where))  # fmt: skip
        seen.add(url)
        issues += [issue] if issue else []
    return issues


def rules(body: dict[str, Any]) -> list[Issue]:
    """The encounter's own rules, after the generic validation."""
    return _time_issues(body) + _service_type_issues(body) + _billing_issues(body)
