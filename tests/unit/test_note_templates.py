"""Note templates (functions/notes/templates.py): built-ins, rendering, a tenant's own."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.errors import Invalid
from functions.notes.templates import (
    BUILT_IN,
    TEMPLATE_SYSTEM,
    Section,
    Template,
    built_in,
    render,
    template_from_json,
    template_to_json,
)

EXPECTED_HEADINGS = {
    "progress-soap": ["Subjective", "Objective", "Assessment", "Plan"],
    "progress-dap": ["Data", "Assessment", "Plan"],
    "progress-birp": ["Behavior", "Intervention", "Response", "Plan"],
    "psychiatric-intake": [
        "Identifying information",
        "Chief complaint",
        "History of present illness",
        "Psychiatric history",
        "Substance use",
        "Medical history",
        "Family and social history",
        "Mental status examination",
        "Risk assessment",
        "Diagnosis",
        "Plan",
    ],
    "medication-management": [
        "Interval history",
        "Current medications and adherence",
        "Side effects",
        "Mental status",
        "Risk",
        "Assessment",
        "Plan",
    ],
    "crisis": [
        "Presenting crisis",
        "Risk assessment",
        "Interventions",
        "Safety plan",
        "Disposition",
        "Follow-up",
    ],
}


def _own(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "group-therapy",
        "title": "Group therapy note",
        "sections": [
            {"heading": "Attendance", "prompt": "Who attended."},
            {"heading": "Themes", "prompt": "Themes discussed.\nOne line each."},
            {"heading": "Plan"},
        ],
    }
    return {**data, **extra}


def _expressions(exc: pytest.ExceptionInfo[Invalid]) -> list[str]:
    return [e for issue in exc.value.issues for e in issue.expression]


# --- built-ins ---------------------------------------------------------------------------------


def test_the_built_in_templates_have_their_sections() -> None:
    assert {t.key: [s.heading for s in t.sections] for t in BUILT_IN} == EXPECTED_HEADINGS


def test_progress_notes_are_loinc_progress_notes_and_the_others_are_local() -> None:
    for template in BUILT_IN:
        coding = template.type_coding
        if template.key.startswith("progress-"):
            assert coding == {
                "system": "http://loinc.org",
                "code": "11506-3",
                "display": "Progress note",
            }
        else:
            assert coding["system"] == TEMPLATE_SYSTEM and coding["code"] == template.key
        assert all(section.prompt for section in template.sections)


def test_templates_are_frozen() -> None:
    with pytest.raises(AttributeError):
        BUILT_IN[0].title = "changed"  # type: ignore[misc]


def test_a_built_in_is_found_by_its_key() -> None:
    assert built_in("progress-soap") is BUILT_IN[1]
    assert built_in("group-therapy") is None


@pytest.mark.parametrize("template", BUILT_IN, ids=lambda t: t.key)
def test_rendering_writes_the_title_and_every_heading_and_prompt_in_order(
    template: Template,
) -> None:
    text = render(template)
    lines = text.splitlines()
    assert lines[0] == template.title
    positions = [lines.index(section.heading) for section in template.sections]
    assert positions == sorted(positions)
    for section in template.sections:
        assert f"[{section.prompt}]" in text
    assert text.endswith("\n")


# --- a tenant's own ----------------------------------------------------------------------------


def test_a_tenants_template_round_trips_through_json() -> None:
    template = template_from_json(_own())
    assert template == Template(
        "group-therapy",
        "Group therapy note",
        {"system": TEMPLATE_SYSTEM, "code": "group-therapy", "display": "Group therapy note"},
        (
            Section("Attendance", "Who attended."),
            Section("Themes", "Themes discussed.\nOne line each."),
            Section("Plan", ""),
        ),
    )
    assert template_from_json(template_to_json(template)) == template


def test_a_tenant_template_cannot_claim_a_loinc_code() -> None:
    data = _own(type={"system": "http://loinc.org", "code": "11506-3"})
    assert template_from_json(data).type_coding["system"] == TEMPLATE_SYSTEM


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"key": None}, "key"),
        ({"key": "G"}, "key"),
        ({"key": "a"}, "key"),
        ({"key": "x" * 41}, "key"),
        ({"key": "group_therapy"}, "key"),
        ({"key": "Group-therapy"}, "key"),
        ({"key": "progress-soap"}, "key"),
        ({"key": 7}, "key"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 121}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"sections": []}, "sections"),
        ({"sections": [{"heading": "h"}] * 31}, "sections"),
        ({"sections": {"heading": "h"}}, "sections"),
        ({"sections": None}, "sections"),
        ({"extra": 1}, "$"),
    ],
)
def test_template_errors_name_the_field(change: dict[str, Any], expression: str) -> None:
    data = {k: v for k, v in _own(**change).items() if v is not None}
    with pytest.raises(Invalid) as exc:
        template_from_json(data)
    assert exc.value.status == 400
    assert _expressions(exc) == [expression]


@pytest.mark.parametrize(
    ("section", "expression"),
    [
        ({"heading": ""}, "sections[2].heading"),
        ({"prompt": "p"}, "sections[2].heading"),
        ({"heading": "h" * 81}, "sections[2].heading"),
        ({"heading": "tab\there"}, "sections[2].heading"),
        ({"heading": "h", "prompt": "p" * 501}, "sections[2].prompt"),
        ({"heading": "h", "prompt": None}, "sections[2].prompt"),
        ({"heading": "h", "prompt": "bell\x07"}, "sections[2].prompt"),
        ({"heading": "h", "note": "x"}, "sections[2]"),
        ("Plan", "sections[2]"),
    ],
)
def test_section_errors_name_the_section_by_its_index(section: Any, expression: str) -> None:
    data = _own()
    data["sections"][2] = section
    with pytest.raises(Invalid) as exc:
        template_from_json(data)
    assert _expressions(exc) == [expression]


def test_limits_are_inclusive() -> None:
    sections = [{"heading": "h" * 80, "prompt": "p" * 500}] * 30
    template = template_from_json(_own(key="x" * 40, title="t" * 120, sections=sections))
    assert len(template.sections) == 30


def test_every_fault_is_listed_and_no_value_is_echoed() -> None:
    data = _own(key="Secret Key", title="", sections=[{"heading": "Ψ" * 90, "prompt": 3}])
    with pytest.raises(Invalid) as exc:
        template_from_json(data)
    assert _expressions(exc) == ["key", "title", "sections[0].heading", "sections[0].prompt"]
    assert "Secret" not in str(exc.value) and "Ψ" not in str(exc.value)


def test_a_template_is_an_object() -> None:
    with pytest.raises(Invalid) as exc:
        template_from_json(["key"])  # type: ignore[arg-type]
    assert _expressions(exc) == ["$"]
