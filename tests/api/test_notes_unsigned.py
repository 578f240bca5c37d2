"""The unsigned-notes list: my drafts older than the clinic's `unsigned_note_days`
(3 by default) and, for a supervisor, those of their trainees; nobody else's, no
other tenant's, never a signed note."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common import tenant_settings
from tests.api.test_notes_workflow import Staff, draft, new_patient, new_staff, operation

OLD = "2020-03-01T09:00:00Z"  # a back-dated draft: `date` is when the note was written


@pytest.fixture(scope="module")
def team(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    supervisor = new_staff(api, stack, "supervisor")
    return {
        "supervisor": supervisor,
        "trainee": new_staff(api, stack, "clinician", supervisor=supervisor.ref),
        "colleague": new_staff(api, stack, "clinician"),
        "foreign": new_staff(api, stack, "supervisor", tenant="other-clinic"),
    }


def _unsigned(api, staff: Staff) -> list[str]:  # type: ignore[no-untyped-def]
    r = api.http.get("/notes/unsigned", headers=staff.headers())
    assert r.status_code == 200, r.body
    bundle: dict[str, Any] = json.loads(r.body)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == len(bundle.get("entry", []))
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_the_default_is_three_days():
    assert tenant_settings.TenantSettings().unsigned_note_days == 3


def test_my_old_drafts_are_listed_and_recent_or_signed_ones_are_not(api, team):
    colleague = team["colleague"]
    pid = new_patient(api)
    old = draft(api, colleague, pid, date=OLD)
    recent = draft(api, colleague, pid)
    old_signed = draft(api, colleague, pid, date=OLD)
    assert operation(api, colleague, old_signed["id"]).status_code == 200
    listed = _unsigned(api, colleague)
    assert old["id"] in listed
    assert recent["id"] not in listed and old_signed["id"] not in listed


def test_a_supervisor_sees_their_trainees_overdue_drafts_and_nobody_elses(api, team):
    pid = new_patient(api)
    trainee_old = draft(api, team["trainee"], pid, date=OLD)
    colleague_old = draft(api, team["colleague"], pid, date=OLD)
    mine_old = draft(api, team["supervisor"], pid, date=OLD)
    listed = _unsigned(api, team["supervisor"])
    assert trainee_old["id"] in listed and mine_old["id"] in listed
    assert colleague_old["id"] not in listed
    assert trainee_old["id"] in _unsigned(api, team["trainee"])
    assert mine_old["id"] not in _unsigned(api, team["trainee"])
    assert _unsigned(api, team["foreign"]) == []


def test_a_draft_signed_since_leaves_the_list_at_once(api, team):
    colleague = team["colleague"]
    old = draft(api, colleague, new_patient(api), date=OLD)
    assert old["id"] in _unsigned(api, colleague)
    assert operation(api, colleague, old["id"]).status_code == 200
    assert old["id"] not in _unsigned(api, colleague)


def test_roles_that_see_no_notes_get_403(api):
    for role in ("front_desk", "admin", "compliance"):
        for tenant in ("demo-clinic", "other-clinic"):
            r = api.http.get("/notes/unsigned", headers=api.headers(role, tenant))
            assert r.status_code == 403, (role, tenant)
            r = api.http.get("/notes/cosign-queue", headers=api.headers(role, tenant))
            assert r.status_code == 403, (role, tenant)
