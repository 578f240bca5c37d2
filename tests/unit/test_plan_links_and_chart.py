"""A plan's goals and the plan it replaces are in its own patient's chart; what an
active plan puts in the chart (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

from functions.plans.chart import SECTION_CHARS, chart_entries
from functions.plans.links import link_issues, replaced_plan
from tests.unit.plan_examples import SAFETY_PLAN_WORDS, safety_plan, treatment_plan

ULID = "01M8CCKP2TV1S25T4D62WHDFFM"
OTHER = "01M8CCKNE9DTWJ0F6EGV5NT0JV"


def _plan(patient: str = "pat", **extra: Any) -> dict[str, Any]:
    body = treatment_plan()
    body.update(subject={"reference": f"Patient/{patient}"},
                goal=[{"reference": f"Goal/pat.{ULID}"}])  # fmt: skip
    return {**body, **extra}


def test_goals_of_the_patients_own_chart_are_accepted() -> None:
    assert link_issues(_plan()) == []


def test_a_goal_of_another_chart_is_refused() -> None:
    body = _plan(goal=[{"reference": f"Goal/pat.{ULID}"}, {"reference": f"Goal/other.{ULID}"}])
    (issue,) = link_issues(body)
    assert issue.code == "value" and issue.expression == ["CarePlan.goal[1].reference"]


def test_an_absolute_subject_names_the_same_patient() -> None:
    body = _plan(subject={"reference": "https://emr.example/fhir/R4/Patient/pat"})
    assert link_issues(body) == []


def test_a_revision_replaces_one_plan_of_the_same_patient() -> None:
    body = _plan(replaces=[{"reference": f"CarePlan/pat.{OTHER}"}])
    assert link_issues(body) == [] and replaced_plan(body) == f"pat.{OTHER}"
    foreign = _plan(replaces=[{"reference": f"CarePlan/other.{OTHER}"}])
    assert [i.expression for i in link_issues(foreign)] == [["CarePlan.replaces[0].reference"]]
    itself = _plan(id=f"pat.{OTHER}", replaces=[{"reference": f"CarePlan/pat.{OTHER}"}])
    assert [i.code for i in link_issues(itself)] == ["value"]
    two = _plan(replaces=[{"reference": f"CarePlan/pat.{OTHER}"}] * 2)
    assert link_issues(two)[0].expression == ["CarePlan.replaces"]
    assert replaced_plan(two) is None and replaced_plan(_plan()) is None


def test_only_an_active_plan_is_in_the_chart() -> None:
    body = treatment_plan()
    (entry,) = chart_entries("p1", body)
    assert entry.key == "1#CarePlan#p1" and entry.summary is not None
    assert entry.summary["resourceType"] == "CarePlan" and entry.summary["id"] == "p1"
    assert chart_entries("p1", {**body, "status": "draft"}) == []
    for status in ("revoked", "completed", "entered-in-error"):
        (gone,) = chart_entries("p1", {**body, "status": status})
        assert gone.summary is None
    assert chart_entries("p1", None)[0].summary is None


def test_a_safety_plans_entry_has_its_sections_cut_short() -> None:
    body = safety_plan()
    body["activity"][1]["detail"]["description"] = "x" * 500
    (entry,) = chart_entries("p1", body)
    assert entry.summary is not None
    sections = entry.summary["sections"]
    assert sections["internal-coping"] == "x" * SECTION_CHARS
    assert sections["warning-signs"] == SAFETY_PLAN_WORDS["warning-signs"]
    assert "sections" not in (chart_entries("p1", treatment_plan())[0].summary or {})
