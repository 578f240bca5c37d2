"""Co-signature: a trainee's signed note awaits their supervisor, sits in that
supervisor's queue, and only that supervisor co-signs it (one transaction: the note,
a verifier Provenance, the chart header, the event). Two tenants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.notes.declarations import AWAITING_COSIGN_URL
from tests.api.test_notes_workflow import (
    NOTES,
    Staff,
    draft,
    issue,
    new_patient,
    new_staff,
    operation,
    provenances,
)

BASE = "/fhir/R4"


@pytest.fixture(scope="module")
def team(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    supervisor = new_staff(api, stack, "supervisor")
    return {
        "supervisor": supervisor,
        "trainee": new_staff(api, stack, "clinician", supervisor=supervisor.ref),
        "other_supervisor": new_staff(api, stack, "supervisor"),
        "foreign_supervisor": new_staff(api, stack, "supervisor", tenant="other-clinic"),
    }


def _queue(api, staff: Staff) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get("/notes/cosign-queue", headers=staff.headers())
    assert r.status_code == 200, r.body
    bundle = json.loads(r.body)
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle.get("entry", []))
    return [e["resource"] for e in bundle.get("entry", [])]


def _header(api, staff: Staff, pid: str, note_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=staff.headers())
    assert r.status_code == 200, r.body
    (found,) = [n for n in json.loads(r.body)["notes"] if n["id"] == note_id]
    return found  # type: ignore[no-any-return]


def test_a_trainees_note_awaits_its_supervisor_then_counts_as_final_once_cosigned(api, team):
    trainee, supervisor = team["trainee"], team["supervisor"]
    pid = new_patient(api)
    note = draft(api, trainee, pid)
    r = operation(api, trainee, note["id"])
    assert r.status_code == 200, r.body
    signed = json.loads(r.body)
    awaiting = [e for e in signed["extension"] if e["url"] == AWAITING_COSIGN_URL]
    assert awaiting == [{"url": AWAITING_COSIGN_URL,
                         "valueReference": {"reference": supervisor.ref}}]  # fmt: skip
    assert "authenticator" not in signed and signed["docStatus"] == "final"
    assert _header(api, supervisor, pid, note["id"])["awaitingCosign"] is True
    assert note["id"] in [n["id"] for n in _queue(api, supervisor)]
    assert _queue(api, team["other_supervisor"]) == []

    r = operation(api, supervisor, note["id"], "$cosign", If_Match='W/"2"')
    assert r.status_code == 200, r.body
    cosigned = json.loads(r.body)
    assert cosigned["authenticator"] == {"reference": supervisor.ref}
    assert AWAITING_COSIGN_URL not in json.dumps(cosigned)
    assert cosigned["meta"]["versionId"] == "3" and r.headers["ETag"] == 'W/"3"'
    header = _header(api, supervisor, pid, note["id"])
    assert header["awaitingCosign"] is False and header["authenticator"] == supervisor.ref
    assert note["id"] not in [n["id"] for n in _queue(api, supervisor)]
    roles = sorted(p["agent"][0]["type"]["coding"][0]["code"]
                   for p in provenances(api, supervisor, note["id"]))  # fmt: skip
    assert roles == ["author", "verifier"]
    verifier = [p for p in provenances(api, supervisor, note["id"])
                if p["agent"][0]["who"]["reference"] == supervisor.ref]  # fmt: skip
    assert verifier[0]["target"] == [{"reference": f"DocumentReference/{note['id']}/_history/3"}]
    assert operation(api, supervisor, note["id"], "$cosign").status_code == 409  # once only


def test_only_the_named_supervisor_cosigns(api, team):
    trainee = team["trainee"]
    note = draft(api, trainee, new_patient(api))
    assert operation(api, trainee, note["id"]).status_code == 200
    r = operation(api, team["other_supervisor"], note["id"], "$cosign")
    assert r.status_code == 403 and issue(r)["code"] == "forbidden"
    assert operation(api, trainee, note["id"], "$cosign").status_code == 403
    assert operation(api, team["foreign_supervisor"], note["id"], "$cosign").status_code == 404
    assert _queue(api, team["foreign_supervisor"]) == []
    now = json.loads(api.http.get(f"{NOTES}/{note['id']}", headers=trainee.headers()).body)
    assert now["meta"]["versionId"] == "2" and AWAITING_COSIGN_URL in json.dumps(now)


def test_a_note_that_awaits_no_cosignature_cannot_be_cosigned(api, team):
    supervisor = team["supervisor"]
    own = draft(api, supervisor, new_patient(api))
    assert operation(api, supervisor, own["id"], "$cosign").status_code == 409  # a draft
    assert operation(api, supervisor, own["id"]).status_code == 200
    r = operation(api, supervisor, own["id"], "$cosign")  # signed, by a non-trainee
    assert r.status_code == 409 and issue(r)["code"] == "business-rule"


def test_a_stale_if_match_on_cosign_is_412(api, team):
    trainee, supervisor = team["trainee"], team["supervisor"]
    note = draft(api, trainee, new_patient(api))
    assert operation(api, trainee, note["id"]).status_code == 200
    assert operation(api, supervisor, note["id"], "$cosign", If_Match='W/"1"').status_code == 412
    assert operation(api, supervisor, note["id"], "$cosign").status_code == 200


def test_a_header_no_longer_in_the_ring_is_not_rewritten(api, team):
    """After 20 later notes the header has left the ring: co-signing still works."""
    trainee, supervisor = team["trainee"], team["supervisor"]
    pid = new_patient(api)
    first = draft(api, trainee, pid)
    assert operation(api, trainee, first["id"]).status_code == 200
    for _ in range(20):
        later = draft(api, supervisor, pid)
        assert operation(api, supervisor, later["id"]).status_code == 200
    assert operation(api, supervisor, first["id"], "$cosign").status_code == 200
    r = api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=supervisor.headers())
    notes = json.loads(r.body)["notes"]
    assert first["id"] not in [n["id"] for n in notes] and len(notes) == 20


def test_a_trainees_psychotherapy_note_stays_hidden_from_a_supervisor_not_granted(api, team):
    """Psychotherapy notes are their author's (and granted roles'): a supervisor the
    clinic has not granted them is told nothing, not even by the queue."""
    trainee, supervisor = team["trainee"], team["supervisor"]
    purpose = {"X_Purpose_Of_Use": "TREAT"}
    note = draft(api, trainee, new_patient(api), psychotherapy=True)
    r = operation(api, trainee, note["id"], **purpose)
    assert r.status_code == 200, r.body
    assert AWAITING_COSIGN_URL in r.body.decode()
    r = operation(api, supervisor, note["id"], "$cosign", **purpose)
    assert r.status_code == 404, r.body
    assert note["id"] not in [n["id"] for n in _queue(api, supervisor)]
