"""Note templates: the built-in ones and a tenant's own, with their JSON form.

A template is a title, a document type coding and a list of sections (a heading and a
prompt). `render` turns one into the draft text a clinician starts from. LOINC is used
only for 11506-3 (Progress note), whose meaning is certain for SOAP, DAP and BIRP notes;
the other built-ins and every tenant template are coded in the local note-template system.

Diagnostics of `template_from_json` name the field by a JSON path (`sections[2].heading`)
and never repeat the submitted value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from functions.common.errors import Invalid, Issue

TEMPLATE_SYSTEM = "https://emr.example/fhir/CodeSystem/note-template"
LOINC = "http://loinc.org"
PROGRESS_NOTE = {"system": LOINC, "code": "11506-3", "display": "Progress note"}

KEY = re.compile(r"[a-z0-9-]{2,40}")
MAX_TITLE = 120
MAX_SECTIONS = 30
MAX_HEADING = 80
MAX_PROMPT = 500
FIELDS = ("key", "title", "sections")
SECTION_FIELDS = ("heading", "prompt")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PROMPT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # tab, LF allowed


@dataclass(frozen=True)
class Section:
    """One part of a note: the heading written into the draft and what to record under it."""

    heading: str
    prompt: str = ""


@dataclass(frozen=True)
class Template:
    """A note template: `type_coding` becomes the DocumentReference's `type`."""

    key: str
    title: str
    type_coding: dict[str, str]
    sections: tuple[Section, ...]


def _local(key: str, display: str) -> dict[str, str]:
    return {"system": TEMPLATE_SYSTEM, "code": key, "display": display}


def _sections(*pairs: tuple[str, str]) -> tuple[Section, ...]:
    return tuple(Section(heading, prompt) for heading, prompt in pairs)


INTAKE = Template(
    "psychiatric-intake",
    "Psychiatric intake evaluation",
    _local("psychiatric-intake", "Psychiatric intake evaluation"),
    _sections(
        ("Identifying information", "Age, pronouns, referral source, who accompanied."),
        ("Chief complaint", "The reason for the visit, in the patient's words."),
        ("History of present illness", "Onset, course, severity, triggers, prior treatment."),
        ("Psychiatric history", "Diagnoses, hospitalizations, medication trials, attempts."),
        ("Substance use", "Alcohol, tobacco, cannabis, other substances; amount, last use."),
        ("Medical history", "Conditions, allergies, current medications."),
        ("Family and social history", "Family psychiatric history; living, work, supports."),
        (
            "Mental status examination",
            "Appearance, behavior, speech, mood, affect, thought, "
            "perception, cognition, insight, judgment.",
        ),
        (
            "Risk assessment",
            "Suicidal and homicidal ideation, plan, intent, means, protective factors; risk level.",
        ),
        ("Diagnosis", "Working diagnoses (ICD-10-CM)."),
        ("Plan", "Treatment, medications, referrals, follow-up."),
    ),
)
SOAP = Template(
    "progress-soap",
    "Progress note (SOAP)",
    PROGRESS_NOTE,
    _sections(
        ("Subjective", "The patient's report since the last visit."),
        ("Objective", "Observations, mental status, measures."),
        ("Assessment", "Clinical impression and progress toward goals."),
        ("Plan", "Next steps, homework, follow-up."),
    ),
)
DAP = Template(
    "progress-dap",
    "Progress note (DAP)",
    PROGRESS_NOTE,
    _sections(
        ("Data", "What the patient reported and what was observed."),
        ("Assessment", "Clinical impression and progress toward goals."),
        ("Plan", "Next steps, homework, follow-up."),
    ),
)
BIRP = Template(
    "progress-birp",
    "Progress note (BIRP)",
    PROGRESS_NOTE,
    _sections(
        ("Behavior", "Presentation, reported and observed behavior."),
        ("Intervention", "Interventions used in the session."),
        ("Response", "The patient's response to the interventions."),
        ("Plan", "Next steps, homework, follow-up."),
    ),
)
MEDICATION_MANAGEMENT = Template(
    "medication-management",
    "Medication management",
    _local("medication-management", "Medication management"),
    _sections(
        ("Interval history", "Changes since the last visit."),
        ("Current medications and adherence", "Each medication, dose, adherence."),
        ("Side effects", "Reported and observed adverse effects."),
        ("Mental status", "Mental status examination."),
        ("Risk", "Suicidal and homicidal ideation; risk level."),
        ("Assessment", "Response to treatment."),
        ("Plan", "Medication changes, labs, follow-up."),
    ),
)
CRISIS = Template(
    "crisis",
    "Crisis note",
    _local("crisis", "Crisis note"),
    _sections(
        ("Presenting crisis", "What happened, when, who is involved."),
        ("Risk assessment", "Ideation, plan, intent, means, protective factors; risk level."),
        ("Interventions", "De-escalation and other interventions."),
        ("Safety plan", "Warning signs, coping, contacts, means restriction."),
        ("Disposition", "Where the patient went; level of care."),
        ("Follow-up", "Who follows up, when."),
    ),
)

BUILT_IN: tuple[Template, ...] = (INTAKE, SOAP, DAP, BIRP, MEDICATION_MANAGEMENT, CRISIS)
BUILT_IN_KEYS = frozenset(t.key for t in BUILT_IN)


def built_in(key: str) -> Template | None:
    """The built-in template of this key, if there is one."""
    return next((t for t in BUILT_IN if t.key == key), None)


def render(template: Template) -> str:
    """The draft text: the title, then each heading with its prompt in brackets."""
    lines = [template.title, "=" * len(template.title)]
    for section in template.sections:
        lines += ["", section.heading, "-" * len(section.heading)]
        lines.append(f"[{section.prompt}]" if section.prompt else "")
    return "\n".join(lines) + "\n"


def template_to_json(template: Template) -> dict[str, Any]:
    """The JSON form of a template (what `template_from_json` reads back)."""
    return {
        "key": template.key,
        "title": template.title,
        "type": dict(template.type_coding),
        "sections": [{"heading": s.heading, "prompt": s.prompt} for s in template.sections],
    }


def _text_issues(
    value: Any, path: str, limit: int, *, minimum: int = 1, control: re.Pattern[str] = _CONTROL
) -> list[Issue]:
    if value is None and minimum:
        return [Issue("required", f"{path} is required.", [path])]
    if not isinstance(value, str):
        return [Issue("structure", f"{path} must be a string.", [path])]
    if len(value.strip()) < minimum or len(value) > limit:
        return [Issue("value", f"{path} must be {minimum} to {limit} characters.", [path])]
    if control.search(value):
        return [Issue("value", f"{path} must not contain control characters.", [path])]
    return []


def _key_issues(value: Any) -> list[Issue]:
    issues = _text_issues(value, "key", 40)
    if issues:
        return issues
    if not KEY.fullmatch(value):
        message = "key must be 2 to 40 lowercase letters, digits or hyphens."
        return [Issue("value", message, ["key"])]
    if value in BUILT_IN_KEYS:
        return [Issue("value", "key is taken by a built-in template.", ["key"])]
    return []


def _unknown_fields(data: dict[str, Any], allowed: tuple[str, ...], parent: str) -> list[Issue]:
    unknown = [k for k in data if k not in allowed]
    if not unknown:
        return []
    message = f"Unknown field in {parent or 'the template'}; allowed: {', '.join(allowed)}."
    return [Issue("structure", message, [parent or "$"])]


def _section_issues(section: Any, path: str) -> list[Issue]:
    if not isinstance(section, dict):
        return [Issue("structure", f"{path} must be an object.", [path])]
    return (
        _unknown_fields(section, SECTION_FIELDS, path)
        + _text_issues(section.get("heading"), f"{path}.heading", MAX_HEADING)
        + _text_issues(
            section.get("prompt", ""),
            f"{path}.prompt",
            MAX_PROMPT,
            minimum=0,
            control=_PROMPT_CONTROL,
        )
    )


def _sections_issues(sections: Any) -> list[Issue]:
    if sections is None:
        return [Issue("required", "sections is required.", ["sections"])]
    if not isinstance(sections, list):
        return [Issue("structure", "sections must be an array.", ["sections"])]
    if not 1 <= len(sections) <= MAX_SECTIONS:
        return [Issue("value", f"sections must hold 1 to {MAX_SECTIONS} entries.", ["sections"])]
    issues: list[Issue] = []
    for i, section in enumerate(sections):
        issues += _section_issues(section, f"sections[{i}]")
    return issues


def template_from_json(data: dict[str, Any]) -> Template:
    """A tenant's own template, checked; `Invalid` names every field at fault.

    A `type` in the data is not read: a tenant template is always coded in the local
    note-template system with its key, so it cannot claim a LOINC code.
    """
    if not isinstance(data, dict):
        raise Invalid(Issue("structure", "A template is a JSON object.", ["$"]))
    issues = (
        _unknown_fields(data, (*FIELDS, "type"), "")
        + _key_issues(data.get("key"))
        + _text_issues(data.get("title"), "title", MAX_TITLE)
        + _sections_issues(data.get("sections"))
    )
    if issues:
        raise Invalid(issues)
    sections = tuple(Section(s["heading"], s.get("prompt", "")) for s in data["sections"])
    return Template(data["key"], data["title"], _local(data["key"], data["title"]), sections)
