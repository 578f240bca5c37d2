"""What a plan points at must be in its own patient's chart: its goals and the plan
it replaces.

Ids of chart resources are compound (`<patient>.<ulid>`, docs/adr/0007): a
reference names its patient, so this is checked on the body alone, with no read.
That a referenced Goal exists and is live is checked in the write's own
transaction (`CheckedReference`); the replaced plan is read by `$sign`.
"""

from __future__ import annotations

import re
from typing import Any

from functions.common.errors import Issue
from functions.engine import registry
from models import keys

ROOT = "CarePlan"
_REFERENCE = re.compile(r"(Goal|CarePlan)/([A-Za-z0-9\-.]{1,64})")


def _patient_of_subject(body: dict[str, Any]) -> str | None:
    compartment = registry.require(ROOT).compartment
    return compartment.named_in(body) if compartment is not None else None


def _reference_text(value: Any) -> str | None:
    text = value.get("reference") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _target(text: str | None, kind: str) -> str | None:
    """The id of a `kind/<id>` reference, or None when it is not one."""
    match = _REFERENCE.fullmatch(text) if text is not None else None
    return match.group(2) if match is not None and match.group(1) == kind else None


def _listed(body: dict[str, Any], element: str) -> list[Any]:
    value = body.get(element)
    return value if isinstance(value, list) else []


def replaced_plan(body: dict[str, Any]) -> str | None:
    """The id of the plan this one replaces (a revision), or None."""
    refs = _listed(body, "replaces")
    return _target(_reference_text(refs[0]), "CarePlan") if len(refs) == 1 else None


def _goal_issues(body: dict[str, Any], patient_id: str) -> list[Issue]:
    """Goals of another chart (references that are not `Goal/<id>` the plan rules name)."""
    issues = []
    for i, ref in enumerate(_listed(body, "goal")):
        goal_id = _target(_reference_text(ref), "Goal")
        if goal_id is not None and keys.patient_of(goal_id) != patient_id:
            message = "A plan's goal must be a Goal of the same patient."
            issues.append(Issue("value", message, [f"{ROOT}.goal[{i}].reference"]))
    return issues


def _replaces_issues(body: dict[str, Any], patient_id: str) -> list[Issue]:
    replaces = _listed(body, "replaces")
    issues = []
    if len(replaces) > 1:
        message = "A plan replaces at most one plan (the one it revises)."
        issues.append(Issue("invalid", message, [f"{ROOT}.replaces"]))
    for i, ref in enumerate(replaces):
        plan_id = _target(_reference_text(ref), "CarePlan")
        if plan_id is None or keys.patient_of(plan_id) != patient_id or plan_id == body.get("id"):
            message = "replaces must reference another CarePlan of the same patient."
            issues.append(Issue("value", message, [f"{ROOT}.replaces[{i}].reference"]))
    return issues


def link_issues(body: dict[str, Any]) -> list[Issue]:
    """Goals and the replaced plan belong to the plan's own patient; a plan replaces
    at most one plan (a revision), never itself."""
    patient_id = _patient_of_subject(body)
    if patient_id is None:
        return []  # the engine names a subject that is not a Patient of ours
    return _goal_issues(body, patient_id) + _replaces_issues(body, patient_id)
