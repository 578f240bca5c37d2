"""Who a note's author may be, what an addendum may append to, and that another
clinic's notes do not exist for anyone here (two tenants)."""

from __future__ import annotations

import json

import pytest

from tests.api.test_notes_workflow import (
    NOTES,
    Staff,
    addendum_of,
    draft,
    issue,
    new_patient,
    new_staff,
    note_body,
    operation,
    post_note,
)

AUTHOR = "DocumentReference.author"
RELATES = "DocumentReference.relatesTo[0].target.reference"


@pytest.fixture(scope="module")
def staff(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    return {
        "me": new_staff(api, stack, "clinician"),
        "colleague": new_staff(api, stack, "clinician"),
        "foreign": new_staff(api, stack, "clinician", tenant="other-clinic"),
    }


def test_a_note_written_under_someone_elses_name_is_403(api, staff):
    me, colleague = staff["me"], staff["colleague"]
    r = post_note(api, me, note_body(new_patient(api), colleague.ref))
    assert r.status_code == 403 and issue(r)["expression"] == [AUTHOR]


def test_a_note_without_an_author_is_400(api, staff):
    body = note_body(new_patient(api), staff["me"].ref)
    del body["author"]
    r = post_note(api, staff["me"], body)
    assert r.status_code == 400 and issue(r)["expression"] == [AUTHOR]


def test_a_user_without_a_practitioner_cannot_write_notes(api, staff):
    body = note_body(new_patient(api), staff["me"].ref)
    r = api.http.post(NOTES, body=json.dumps(body), headers=api.headers("clinician"))
    assert r.status_code == 403 and issue(r)["expression"] == [AUTHOR]


def test_an_edit_cannot_change_the_author(api, staff):
    me, colleague = staff["me"], staff["colleague"]
    note = draft(api, me, new_patient(api))
    moved = {**note, "author": [{"reference": colleague.ref}]}
    r = api.http.put(f"{NOTES}/{note['id']}", body=json.dumps(moved), headers=me.headers())
    assert r.status_code == 400 and issue(r)["expression"] == [AUTHOR]


def test_an_addendum_to_a_draft_is_409(api, staff):
    me = staff["me"]
    pid = new_patient(api)
    target = draft(api, me, pid)
    r = post_note(api, me, addendum_of(pid, me.ref, target["id"]))
    assert r.status_code == 409 and issue(r)["expression"] == [RELATES]


def test_an_addendum_to_another_patients_or_an_unknown_note_is_400(api, staff):
    me = staff["me"]
    pid, other = new_patient(api), new_patient(api)
    target = draft(api, me, pid)
    assert operation(api, me, target["id"]).status_code == 200
    for body in (addendum_of(other, me.ref, target["id"]),
                 addendum_of(pid, me.ref, f"{pid}.01J0000000000000000000000Z"),
                 addendum_of(pid, me.ref, "not-a-note")):  # fmt: skip
        r = post_note(api, me, body)
        assert r.status_code == 400 and issue(r)["expression"] == [RELATES], r.body


def test_a_clinical_addendum_to_a_psychotherapy_note_is_400(api, staff):
    me = staff["me"]
    pid = new_patient(api)
    target = draft(api, me, pid, psychotherapy=True)
    assert operation(api, me, target["id"], X_Purpose_Of_Use="TREAT").status_code == 200
    r = post_note(api, me, addendum_of(pid, me.ref, target["id"]))
    assert r.status_code == 400 and issue(r)["expression"] == [RELATES]


def test_another_clinics_note_is_404_for_every_operation(api, staff):
    foreign = staff["foreign"]
    pid = new_patient(api, tenant="other-clinic")
    theirs = draft(api, foreign, pid)
    me = staff["me"]
    for name in ("$sign", "$cosign"):
        r = operation(api, me, theirs["id"], name)
        assert r.status_code == 404, (name, r.body)
        assert theirs["id"].encode() not in r.body
    assert api.http.get(f"{NOTES}/{theirs['id']}", headers=me.headers()).status_code == 404
    r = post_note(api, me, addendum_of(pid, me.ref, theirs["id"]))
    assert r.status_code == 400  # the patient is not one of this clinic's
    assert operation(api, foreign, theirs["id"]).status_code == 200  # theirs to sign
