"""The rules of treatment plans and safety plans (CarePlan) and of their goals (Goal).

A plan is a CarePlan with `intent` `plan` and exactly one category coding of
CATEGORY_SYSTEM, which says its kind:

* `treatment-plan`: at least one goal (a reference to `Goal/<id>`), at least one
  intervention (`activity.detail` with a description or a code, and a valid R4
  `detail.status`), and a review date (the REVIEW_DATE_URL extension, a FHIR date
  in `valueDate`, not before `period.start`).
* `safety-plan`: the six sections of the Stanley-Brown Safety Planning
  Intervention (Stanley B, Brown GK. Safety Planning Intervention: a brief
  intervention to mitigate suicide risk. Cognitive and Behavioral Practice
  2012;19(2):256-264), each exactly once, as one activity whose `detail.code` is a
  coding of SECTION_SYSTEM and whose `detail.description` holds the patient's own
  words. The professional-contacts section must give the 988 Suicide & Crisis
  Lifeline (the successor, since 2022, of the lifeline the 2012 template names).
  The review date is optional; when given it follows the rules above.

A Goal names something in `description`, has a valid R4 `lifecycleStatus`, and
each target with a measure says what is aimed at (`detail[x]`) or by when
(`due[x]`); a `detail[x]` needs a measure (R4 invariant gol-1); `target.dueDate`
is not before `startDate`.

Dates compare as ranges (functions/engine/values.py): a date is "before" another
only when it ends before the other begins, so `2026-03` is not before `2026-03-15`.
Diagnostics name elements and codes, never the submitted values.
"""

from __future__ import annotations

import re
from typing import Any

from functions.common.errors import Issue
from functions.engine.values import date_range

ROOT = "CarePlan"
GOAL = "Goal"
CATEGORY_SYSTEM = "https://emr.example/fhir/CodeSystem/care-plan-category"
TREATMENT_PLAN = "treatment-plan"
SAFETY_PLAN = "safety-plan"
KINDS = (TREATMENT_PLAN, SAFETY_PLAN)
SECTION_SYSTEM = "https://emr.example/fhir/CodeSystem/safety-plan-section"
SECTIONS: dict[str, str] = {  # in the order of the Stanley-Brown template
    "warning-signs": "Warning signs",
    "internal-coping": "Internal coping strategies",
    "social-distraction": "People and social settings that provide distraction",
    "help-contacts": "People whom I can ask for help",
    "professional-contacts": "Professionals or agencies to contact during a crisis",
    "environment-safety": "Making the environment safe",
}
CRISIS_SECTION = "professional-contacts"
REVIEW_DATE_URL = "https://emr.example/fhir/StructureDefinition/review-date"
REVIEW_DATE = f"{ROOT}.extension('{REVIEW_DATE_URL}')"
ACTIVITY_STATUS = (
    "not-started", "scheduled", "in-progress", "on-hold", "completed",
    "cancelled", "stopped", "unknown", "entered-in-error",
)  # fmt: skip
GOAL_LIFECYCLE = (
    "proposed", "planned", "accepted", "active", "on-hold",
    "completed", "cancelled", "entered-in-error", "rejected",
)  # fmt: skip
TARGET_DETAIL = (
    "detailQuantity", "detailRange", "detailCodeableConcept", "detailString",
    "detailBoolean", "detailInteger", "detailRatio",
)  # fmt: skip
TARGET_DUE = ("dueDate", "dueDuration")

_CRISIS_LINE = re.compile(r"(?<![0-9])988(?![0-9])")
_DATE_ONLY = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")
_GOAL_REFERENCE = re.compile(r"Goal/[A-Za-z0-9\-.]{1,64}")


# --- small readers --------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    """The value if it is a JSON array, else nothing (the models name wrong shapes)."""
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _has_text(value: Any) -> bool:
    """A string with something other than white space."""
    return isinstance(value, str) and bool(value.strip())


def _names_something(concept: Any) -> bool:
    """A CodeableConcept with a text, or a coding with a code or display."""
    if _has_text(_dict(concept).get("text")):
        return True
    return any(
        _has_text(_dict(c).get("code")) or _has_text(_dict(c).get("display"))
        for c in _list(_dict(concept).get("coding"))
    )


def _codes_of(concept: Any, system: str, path: str) -> list[tuple[str, Any]]:
    """(expression, code) of each coding of `system` in a CodeableConcept at `path`."""
    return [
        (f"{path}.coding[{j}].code", coding.get("code"))
        for j, coding in enumerate(_list(_dict(concept).get("coding")))
        if isinstance(coding, dict) and coding.get("system") == system
    ]


def _is_date(value: Any) -> bool:
    """A FHIR date (YYYY, YYYY-MM or YYYY-MM-DD) that exists on the calendar."""
    return (
        isinstance(value, str)
        and _DATE_ONLY.fullmatch(value) is not None
        and date_range(value) is not None
    )


def _before(value: Any, other: Any) -> bool:
    """True when the date `value` ends before the date or dateTime `other` begins."""
    if not (isinstance(value, str) and isinstance(other, str)):
        return False
    mine, theirs = date_range(value), date_range(other)
    return mine is not None and theirs is not None and mine.hi <= theirs.lo


def _one_of(value: Any, allowed: tuple[str, ...], expression: str, what: str) -> list[Issue]:
    """Required, and one of the value set's codes."""
    if value is None:
        return [Issue("required", f"The {what} is required.", [expression])]
    if value in allowed:
        return []
    return [Issue("code-invalid", f"Unknown {what}; one of: {', '.join(allowed)}.", [expression])]


# --- kind, intent, goals, review date ---------------------------------------------------------


def _category_codes(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(expression, code) of every category coding of CATEGORY_SYSTEM."""
    found: list[tuple[str, Any]] = []
    for i, concept in enumerate(_list(body.get("category"))):
        found += _codes_of(concept, CATEGORY_SYSTEM, f"{ROOT}.category[{i}]")
    return found


def plan_kind(body: dict[str, Any]) -> str | None:
    """treatment-plan or safety-plan; None unless exactly one known kind is coded."""
    found = _category_codes(body)
    if len(found) == 1 and found[0][1] in KINDS:
        return str(found[0][1])
    return None


def _category_issues(body: dict[str, Any]) -> list[Issue]:
    found = _category_codes(body)
    kinds = ", ".join(KINDS)
    if not found:
        message = f"A plan needs one category coding of {CATEGORY_SYSTEM} ({kinds})."
        return [Issue("required", message, [f"{ROOT}.category"])]
    if len(found) > 1:
        message = f"A plan has exactly one category coding of {CATEGORY_SYSTEM}."
        return [Issue("invalid", message, [f"{ROOT}.category"])]
    return _one_of(found[0][1], KINDS, found[0][0], f"plan category of {CATEGORY_SYSTEM}")


def _intent_issues(body: dict[str, Any]) -> list[Issue]:
    intent = body.get("intent")
    if intent == "plan":
        return []
    code = "required" if intent is None else "code-invalid"
    return [Issue(code, "A plan's intent is plan.", [f"{ROOT}.intent"])]


def _is_goal_reference(ref: Any) -> bool:
    text = _dict(ref).get("reference")
    return isinstance(text, str) and _GOAL_REFERENCE.fullmatch(text) is not None


def _goal_issues(body: dict[str, Any], required: bool) -> list[Issue]:
    goals = _list(body.get("goal"))
    message = "A plan's goal is a reference to Goal/<id>."
    issues = [
        Issue("value", message, [f"{ROOT}.goal[{i}].reference"])
        for i, ref in enumerate(goals)
        if not _is_goal_reference(ref)
    ]
    if required and not goals:
        message = "A treatment plan needs at least one goal (a reference to Goal/<id>)."
        issues.append(Issue("required", message, [f"{ROOT}.goal"]))
    return issues


def _review_extensions(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e for e in _list(body.get("extension"))
        if isinstance(e, dict) and e.get("url") == REVIEW_DATE_URL
    ]  # fmt: skip


def review_date(body: dict[str, Any]) -> str | None:
    """The plan's review date (valueDate of the one REVIEW_DATE_URL extension), if valid."""
    found = _review_extensions(body)
    value = found[0].get("valueDate") if len(found) == 1 else None
    return value if _is_date(value) else None


def _review_date_issues(body: dict[str, Any], required: bool) -> list[Issue]:
    found = _review_extensions(body)
    if not found:
        message = "A treatment plan needs a review date (valueDate)."
        return [Issue("required", message, [REVIEW_DATE])] if required else []
    if len(found) > 1:
        return [Issue("invalid", "A plan has at most one review date.", [REVIEW_DATE])]
    value = found[0].get("valueDate")
    if not _is_date(value):
        message = "The review date is a valueDate: a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)."
        return [Issue("value", message, [REVIEW_DATE])]
    if _before(value, _dict(body.get("period")).get("start")):
        return [Issue("invariant", "The review date is before period.start.", [REVIEW_DATE])]
    return []


# --- activities -------------------------------------------------------------------------------


def _status_issues(detail: dict[str, Any], path: str) -> list[Issue]:
    return _one_of(detail.get("status"), ACTIVITY_STATUS, f"{path}.status", "activity status")


def _intervention_issues(i: int, activity: Any) -> list[Issue]:
    """One activity of a treatment plan: an intervention described or coded."""
    path = f"{ROOT}.activity[{i}].detail"
    detail = _dict(activity).get("detail")
    if not isinstance(detail, dict):
        message = "An intervention needs a detail with a description or a code."
        return [Issue("required", message, [path])]
    issues = _status_issues(detail, path)
    if not (_has_text(detail.get("description")) or _names_something(detail.get("code"))):
        message = "An intervention needs detail.description or detail.code."
        issues.insert(0, Issue("required", message, [f"{path}.description", f"{path}.code"]))
    return issues


def _treatment_plan_issues(body: dict[str, Any]) -> list[Issue]:
    activities = _list(body.get("activity"))
    issues = _goal_issues(body, required=True)
    if not activities:
        message = "A treatment plan needs at least one activity (an intervention)."
        issues.append(Issue("required", message, [f"{ROOT}.activity"]))
    for i, activity in enumerate(activities):
        issues += _intervention_issues(i, activity)
    return issues + _review_date_issues(body, required=True)


def _section_code(detail: dict[str, Any], path: str) -> tuple[str | None, list[Issue]]:
    """The section an activity's detail.code names, or the issues that say why not."""
    found = _codes_of(detail.get("code"), SECTION_SYSTEM, f"{path}.code")
    if not found:
        message = f"A safety-plan section needs a detail.code coding of {SECTION_SYSTEM}."
        return None, [Issue("required", message, [f"{path}.code"])]
    if len(found) > 1:
        message = f"A safety-plan activity is one section: one coding of {SECTION_SYSTEM}."
        return None, [Issue("invalid", message, [f"{path}.code"])]
    expression, code = found[0]
    issues = _one_of(code, tuple(SECTIONS), expression, f"safety-plan section of {SECTION_SYSTEM}")
    return (None if issues else str(code)), issues


def _section_issues(i: int, activity: Any) -> tuple[str | None, list[Issue]]:
    """One activity of a safety plan: a coded section in the patient's own words."""
    path = f"{ROOT}.activity[{i}].detail"
    detail = _dict(activity).get("detail")
    if not isinstance(detail, dict):
        message = "A safety-plan section needs a detail with a section code and a description."
        return None, [Issue("required", message, [path])]
    section, issues = _section_code(detail, path)
    description = detail.get("description")
    if not isinstance(description, str) or not description.strip():
        message = "A safety-plan section needs detail.description (the patient's own words)."
        issues.append(Issue("required", message, [f"{path}.description"]))
    elif section == CRISIS_SECTION and not _CRISIS_LINE.search(description):
        message = (
            f"The {CRISIS_SECTION} section must give the 988 Suicide & Crisis Lifeline: "
            "the crisis line is required."
        )
        issues.append(Issue("required", message, [f"{path}.description"]))
    return section, issues + _status_issues(detail, path)


def _safety_plan_issues(body: dict[str, Any]) -> list[Issue]:
    seen: dict[str, int] = {}
    issues = _goal_issues(body, required=False)
    for i, activity in enumerate(_list(body.get("activity"))):
        section, found = _section_issues(i, activity)
        issues += found
        if section is not None and section in seen:
            message = f"The safety-plan section {section} appears more than once."
            issues.append(Issue("duplicate", message, [f"{ROOT}.activity[{i}].detail.code"]))
        elif section is not None:
            seen[section] = i
    missing = [code for code in SECTIONS if code not in seen]
    if missing:
        message = f"A safety plan has the six sections, once each; missing: {', '.join(missing)}."
        issues.append(Issue("required", message, [f"{ROOT}.activity"]))
    return issues + _review_date_issues(body, required=False)


def care_plan_rules(body: dict[str, Any]) -> list[Issue]:
    """The plan's own rules, after the generic validation."""
    issues = _intent_issues(body) + _category_issues(body)
    kind = plan_kind(body)
    if kind == TREATMENT_PLAN:
        return issues + _treatment_plan_issues(body)
    if kind == SAFETY_PLAN:
        return issues + _safety_plan_issues(body)
    return issues + _goal_issues(body, required=False) + _review_date_issues(body, required=False)


# --- goals ------------------------------------------------------------------------------------


def _target_issues(i: int, target: Any, start: Any) -> list[Issue]:
    path = f"{GOAL}.target[{i}]"
    if not isinstance(target, dict):
        return []  # the models name it
    issues = []
    has_detail = any(target.get(k) is not None for k in TARGET_DETAIL)
    has_due = any(target.get(k) is not None for k in TARGET_DUE)
    if target.get("measure") is not None and not (has_detail or has_due):
        message = "A target with a measure needs a detail[x] (what is aimed at) or a due[x]."
        issues.append(Issue("required", message, [f"{path}.detail", f"{path}.due"]))
    if has_detail and target.get("measure") is None:
        message = "A target with a detail[x] needs a measure (gol-1)."
        issues.append(Issue("required", message, [f"{path}.measure"]))
    if _before(target.get("dueDate"), start):
        message = "target.dueDate is before startDate."
        issues.append(Issue("invariant", message, [f"{path}.dueDate"]))
    return issues


def goal_rules(body: dict[str, Any]) -> list[Issue]:
    """The goal's own rules, after the generic validation."""
    issues = []
    if not _names_something(body.get("description")):
        message = "A goal's description names it: a text, or a coding with a code or display."
        issues.append(Issue("required", message, [f"{GOAL}.description"]))
    status = body.get("lifecycleStatus")
    issues += _one_of(status, GOAL_LIFECYCLE, f"{GOAL}.lifecycleStatus", "lifecycle status")
    for i, target in enumerate(_list(body.get("target"))):
        issues += _target_issues(i, target, body.get("startDate"))
    return issues


# --- what the chart shows ---------------------------------------------------------------------


def safety_plan_sections(body: dict[str, Any]) -> dict[str, str]:
    """Section code -> description, in the template's order (the first of a repeated one)."""
    found: dict[str, str] = {}
    for activity in _list(body.get("activity")):
        detail = _dict(_dict(activity).get("detail"))
        codes = _codes_of(detail.get("code"), SECTION_SYSTEM, "")
        description = detail.get("description")
        if len(codes) == 1 and codes[0][1] in SECTIONS and isinstance(description, str):
            found.setdefault(codes[0][1], description)
    return {code: found[code] for code in SECTIONS if code in found}


def summary(body: dict[str, Any]) -> dict[str, Any]:
    """Kind, status, title, review date, goal and activity counts of a plan."""
    return {
        "kind": plan_kind(body),
        "status": body.get("status"),
        "title": body.get("title"),
        "reviewDate": review_date(body),
        "goalCount": len(_list(body.get("goal"))),
        "activityCount": len(_list(body.get("activity"))),
    }
