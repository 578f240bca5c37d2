"""Safety plans over HTTP: the six Stanley-Brown sections, 988 among the crisis
contacts, refusals naming the section's element; a signed safety plan shows its
sections (each cut short) in the chart."""

from __future__ import annotations

import json

import pytest

from functions.plans.chart import SECTION_CHARS
from functions.plans.rules import SECTIONS
from tests.api.test_plans_workflow import (
    chart_plans,
    created,
    issue,
    new_patient,
    post,
    safety_plan,
    sign,
    signer,
)
from tests.unit.plan_examples import SAFETY_PLAN_WORDS


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    signer(api)
    return new_patient(api)


@pytest.mark.parametrize("missing", list(SECTIONS))
def test_each_of_the_six_sections_is_required(api, pid, missing):
    body = safety_plan(pid)
    body["activity"] = [
        a for a in body["activity"] if a["detail"]["code"]["coding"][0]["code"] != missing
    ]
    r = post(api, "CarePlan", body)
    assert r.status_code == 400, r.body
    outcome = json.loads(r.body)["issue"]
    assert [i["expression"] for i in outcome] == [["CarePlan.activity"]]
    assert missing in outcome[0]["diagnostics"]


def test_the_crisis_contacts_must_give_988(api, pid):
    body = safety_plan(pid)
    body["activity"][4]["detail"]["description"] = "My therapist during office hours."
    r = post(api, "CarePlan", body)
    assert r.status_code == 400, r.body
    assert issue(r) == ("required", ["CarePlan.activity[4].detail.description"])
    assert "988" in json.loads(r.body)["issue"][0]["diagnostics"]
    assert "therapist" not in r.body.decode()  # the patient's words are never repeated


def test_a_section_given_twice_is_refused(api, pid):
    body = safety_plan(pid)
    body["activity"].append(body["activity"][0])
    r = post(api, "CarePlan", body)
    assert r.status_code == 400, r.body
    assert issue(r) == ("duplicate", ["CarePlan.activity[6].detail.code"])


def test_a_signed_safety_plan_shows_its_sections_in_the_chart(api, pid):
    plan = created(post(api, "CarePlan", safety_plan(pid)))
    assert chart_plans(api, pid) == []
    r = sign(api, plan["id"])
    assert r.status_code == 200, r.body
    (entry,) = chart_plans(api, pid)
    assert entry["id"] == plan["id"] and entry["kind"] == "safety-plan"
    assert entry["status"] == "active" and entry["activityCount"] == 6
    assert entry["sections"] == SAFETY_PLAN_WORDS
    assert list(entry["sections"]) == list(SECTIONS)


def test_the_chart_cuts_each_section_short(api, pid):
    body = safety_plan(pid)
    body["activity"][0]["detail"]["description"] = "Not sleeping. " * 40
    plan = created(post(api, "CarePlan", body))
    assert sign(api, plan["id"]).status_code == 200
    (entry,) = chart_plans(api, pid)
    assert len(entry["sections"]["warning-signs"]) == SECTION_CHARS
    full = json.loads(api.http.get(f"/fhir/R4/CarePlan/{plan['id']}",
                                   headers=api.headers()).body)  # fmt: skip
    assert full["activity"][0]["detail"]["description"] == "Not sleeping. " * 40
