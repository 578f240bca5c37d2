"""Patient bodies: the rules every resource type follows (functions/engine/validation.py:
R4B model, JSON types, characters, narrative, ids, server meta) plus the rules this
EMR adds for registration. Errors name the field as a FHIRPath expression and never
echo the submitted value (it may be PHI).

Every rule and limit is listed in docs/input-validation.md."""

from __future__ import annotations

from typing import Any

from functions.common.errors import Issue
from functions.engine.validation import (
    FORBIDDEN_CHARACTERS,
    MAX_ISSUES,
    NARRATIVE_RULE,
    SERVER_META,
    future_date_issue,
    narrative_problem,
    today_utc,
    validate_resource,
)
from models.blind_index import normalize_words

__all__ = [
    "FORBIDDEN_CHARACTERS",
    "GENDERS",
    "MAX_ISSUES",
    "NARRATIVE_RULE",
    "SERVER_META",
    "narrative_problem",
    "today_utc",
    "validate_patient",
]

GENDERS = {"male", "female", "other", "unknown"}


def validate_patient(body: dict[str, Any], *, path_id: str | None) -> dict[str, Any]:
    """Return the resource to store (server-managed elements removed) or raise 400."""
    return validate_resource("Patient", body, path_id=path_id, rules=_registration_rules)


# --- registration rules -------------------------------------------------------------------------


def _has_words(name: dict[str, Any]) -> bool:
    parts = [name.get("family") or "", *(name.get("given") or [])]
    return any(normalize_words(str(p)) for p in parts)


def _birth_date_issues(body: dict[str, Any]) -> list[Issue]:
    birth = body.get("birthDate")
    if not birth:
        return [Issue("required", "birthDate is required.", ["Patient.birthDate"])]
    # today_utc looked up here, at call time, so tests can set this module's clock
    issue = future_date_issue(str(birth), "Patient.birthDate", today=today_utc())
    return [issue] if issue else []


def _registration_rules(body: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    names = body.get("name") or []
    if not any(isinstance(n, dict) and _has_words(n) for n in names):
        message = "A name with a family or given part (letters or digits) is required."
        issues.append(Issue("required", message, ["Patient.name"]))
    issues.extend(_birth_date_issues(body))
    gender = body.get("gender")
    if gender is not None and gender not in GENDERS:
        issues.append(
            Issue(
                "value", "gender must be one of male, female, other, unknown.", ["Patient.gender"]
            )
        )
    return issues


# The Patient declaration (functions/engine/types.py) runs these after the generic rules.
registration_rules = _registration_rules
