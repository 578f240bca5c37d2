"""Patient bodies validated with `fhir.resources` (R4B models) plus the rules
this EMR adds for registration. Errors name the field as a FHIRPath expression
and never echo the submitted value (it may be PHI)."""

from __future__ import annotations

import re
from typing import Any

from functions.common.errors import Invalid, Issue
from models.blind_index import normalize_words

GENDERS = {"male", "female", "other", "unknown"}
# FHIR narrative rules (xhtml datatype): no scripts, no event handlers, no active links.
ACTIVE_CONTENT = re.compile(
    r"<\s*(script|iframe|object|embed|form)\b|\son\w+\s*=|javascript:", re.IGNORECASE
)
SERVER_META = ("versionId", "lastUpdated")  # set by the server; tags, labels, profiles kept


def _expression(loc: tuple[Any, ...]) -> str:
    path = "Patient"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path


def _issue(error: dict[str, Any]) -> Issue:
    kind = error.get("type", "")
    expression = _expression(tuple(error.get("loc", ())))
    if kind == "extra_forbidden":
        return Issue("structure", "Unknown element.", [expression])
    if kind == "missing":
        return Issue("required", "Missing required element.", [expression])
    message = str(error.get("msg", "Invalid value.")).removeprefix("Value error, ")
    return Issue("value", message, [expression])


def _has_words(name: dict[str, Any]) -> bool:
    parts = [name.get("family") or "", *(name.get("given") or [])]
    return any(normalize_words(str(p)) for p in parts)


def _narrative_issues(body: dict[str, Any]) -> list[Issue]:
    div = str((body.get("text") or {}).get("div") or "")
    if div and (not div.lstrip().startswith("<div") or ACTIVE_CONTENT.search(div)):
        message = "The narrative must be an XHTML <div> without scripts or event handlers."
        return [Issue("value", message, ["Patient.text.div"])]
    return []


def _registration_rules(body: dict[str, Any]) -> list[Issue]:
    issues = _narrative_issues(body)
    names = body.get("name") or []
    if not any(isinstance(n, dict) and _has_words(n) for n in names):
        message = "A name with a family or given part (letters or digits) is required."
        issues.append(Issue("required", message, ["Patient.name"]))
    if not body.get("birthDate"):
        issues.append(Issue("required", "birthDate is required.", ["Patient.birthDate"]))
    gender = body.get("gender")
    if gender is not None and gender not in GENDERS:
        issues.append(
            Issue(
                "value", "gender must be one of male, female, other, unknown.", ["Patient.gender"]
            )
        )
    return issues


def validate_patient(body: dict[str, Any], *, path_id: str | None) -> dict[str, Any]:
    """Return the resource to store (server-managed elements removed) or raise 400."""
    if body.get("resourceType") != "Patient":
        raise Invalid(Issue("invalid", "resourceType must be 'Patient'.", ["Patient.resourceType"]))
    if path_id is not None and body.get("id") != path_id:
        raise Invalid(
            Issue("invalid", "The body's id must equal the id in the URL.", ["Patient.id"])
        )
    from fhir.resources.R4B.patient import Patient  # heavy: only on write paths
    from pydantic import ValidationError

    try:
        model = Patient.model_validate(body)
    except ValidationError as exc:
        raise Invalid([_issue(e) for e in exc.errors()]) from None  # type: ignore[arg-type]
    canonical: dict[str, Any] = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    issues = _json_type_issues(body, canonical, "Patient") + _registration_rules(body)
    if issues:
        raise Invalid(issues)
    clean = {k: v for k, v in canonical.items() if k != "id"}
    meta = {k: v for k, v in (clean.pop("meta", None) or {}).items() if k not in SERVER_META}
    return {**clean, "meta": meta} if meta else clean


def _json_type_issues(given: Any, canonical: Any, path: str) -> list[Issue]:
    """The models coerce lax input ("yes" -> true, "5" -> 5); FHIR JSON does not.
    Report every primitive whose JSON type differs from the canonical form."""
    if isinstance(given, dict) and isinstance(canonical, dict):
        return [
            i
            for k, v in given.items()
            if k in canonical
            for i in _json_type_issues(v, canonical[k], f"{path}.{k}")
        ]
    if isinstance(given, list) and isinstance(canonical, list):
        return [
            i
            for n, (a, b) in enumerate(zip(given, canonical, strict=False))
            for i in _json_type_issues(a, b, f"{path}[{n}]")
        ]
    if isinstance(canonical, bool | int | float) and not isinstance(given, bool | int | float):
        kind = "boolean" if isinstance(canonical, bool) else "number"
        return [Issue("value", f"Must be a JSON {kind}.", [path])]
    return []
