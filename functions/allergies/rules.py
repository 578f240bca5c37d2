"""The AllergyIntolerance's own rules: what a prescriber needs to rely on it.

The substance (`code`) is required: a CodeableConcept with a coding that carries a
code or display, or a text. The R4 required value sets the R4B models do not check:
`criticality` (low, high, unable-to-assess), `reaction[i].severity` (mild, moderate,
severe), and the codings of `clinicalStatus` and `verificationStatus` in their
terminology.hl7.org code systems (codings of other systems are kept as they are).
Each reaction names at least one manifestation: the models refuse a missing
`manifestation` themselves, these rules an empty one (`[]` or entries naming
nothing), which the models would drop and store as a reaction without it.

Diagnostics name elements and the value sets' codes, never the submitted values.
"""

from __future__ import annotations

from typing import Any

from functions.common.errors import Issue

ROOT = "AllergyIntolerance"
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CRITICALITY = ("low", "high", "unable-to-assess")
SEVERITY = ("mild", "moderate", "severe")
CLINICAL_STATUS = ("active", "inactive", "resolved")
VERIFICATION_STATUS = ("unconfirmed", "confirmed", "refuted", "entered-in-error")


def _names_something(concept: Any) -> bool:
    """A CodeableConcept with a text, or a coding with a code or display."""
    if not isinstance(concept, dict):
        return False
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return True
    codings = concept.get("coding")
    return any(
        isinstance(c, dict) and any(isinstance(c.get(k), str) and c[k] for k in ("code", "display"))
        for c in (codings if isinstance(codings, list) else [])
    )


def _one_of(value: Any, allowed: tuple[str, ...], expression: str, what: str) -> list[Issue]:
    if value is None or value in allowed:
        return []
    message = f"Unknown {what}; one of: {', '.join(allowed)}."
    return [Issue("code-invalid", message, [expression])]


def _code_issues(body: dict[str, Any]) -> list[Issue]:
    if _names_something(body.get("code")):
        return []
    message = "The substance (code) is required: a coding with a code or display, or a text."
    return [Issue("required", message, [f"{ROOT}.code"])]


def _reaction_issues(body: dict[str, Any]) -> list[Issue]:
    reactions = body.get("reaction")
    issues = []
    for i, reaction in enumerate(reactions if isinstance(reactions, list) else []):
        if not isinstance(reaction, dict):
            continue  # the models name it
        path = f"{ROOT}.reaction[{i}]"
        issues += _one_of(reaction.get("severity"), SEVERITY, f"{path}.severity", "severity")
        found = reaction.get("manifestation")
        if isinstance(found, list) and not any(_names_something(m) for m in found):
            message = "A reaction needs at least one manifestation (a coding or a text)."
            issues.append(Issue("required", message, [f"{path}.manifestation"]))
    return issues


def _status_issues(
    body: dict[str, Any], element: str, system: str, allowed: tuple[str, ...]
) -> list[Issue]:
    concept = body.get(element)
    codings = concept.get("coding") if isinstance(concept, dict) else None
    issues = []
    for i, coding in enumerate(codings if isinstance(codings, list) else []):
        if not isinstance(coding, dict) or coding.get("system") != system:
            continue
        if coding.get("code") not in allowed:
            message = f"Unknown {element} code of {system}; one of: {', '.join(allowed)}."
            issues.append(Issue("code-invalid", message, [f"{ROOT}.{element}.coding[{i}].code"]))
    return issues


def rules(body: dict[str, Any]) -> list[Issue]:
    """The allergy's own rules, after the generic validation."""
    return (
        _code_issues(body)
        + _status_issues(body, "clinicalStatus", CLINICAL_SYSTEM, CLINICAL_STATUS)
        + _status_issues(body, "verificationStatus", VERIFICATION_SYSTEM, VERIFICATION_STATUS)
        + _one_of(body.get("criticality"), CRITICALITY, f"{ROOT}.criticality", "criticality")
        + _reaction_issues(body)
    )
