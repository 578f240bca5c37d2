"""`encounter.finished.v1` is staged in the transaction of the version that makes an
encounter finished (created finished, or moved to finished), never for a correction
of one already finished nor for a refused change; signed and co-signed notes name
their encounter. Observed in the outbox and, through the stream and the bus, on the
billing queue."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.encounters.workflow import SERVICE_TYPE_SYSTEM
from models import keys
from tests.api.test_notes_workflow import Staff, draft, new_patient, new_staff, operation
from tests.pipelines.conftest import RecordingRunner, queue_taker

BASE = "/fhir/R4/Encounter"
TENANT = "demo-clinic"
START, END = "2026-11-26T09:00:00Z", "2026-11-26T09:50:00Z"


def _body(pid: str, status: str, end: str = END) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceType": {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": "crisis"}]},
    }
    if status in ("in-progress", "finished"):
        body["period"] = {"start": START}
    if status == "finished":
        body["period"]["end"] = end
    return body


def _create(api, pid: str, status: str, tenant: str = TENANT) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = api.http.post(BASE, body=json.dumps(_body(pid, status)),
                      headers=api.headers("front_desk", tenant))  # fmt: skip
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def _put(api, current: dict[str, Any], status: str, if_match: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    pid = current["subject"]["reference"].removeprefix("Patient/")
    headers = {"If_Match": if_match} if if_match else {}
    return api.http.put(f"{BASE}/{current['id']}",
                        body=json.dumps({**_body(pid, status, **kw), "id": current["id"]}),
                        headers=api.headers("clinician", **headers))  # fmt: skip


def _move(api, current: dict[str, Any], status: str, **kw: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = _put(api, current, status, f'W/"{current["meta"]["versionId"]}"', **kw)
    assert r.status_code == 200, r.body
    moved: dict[str, Any] = json.loads(r.body)
    return moved


def _outbox(stack, name: str, needle: str, tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The staged, not yet delivered events `<name>.v1` whose detail mentions `needle`:
    (item, detail). One Query of the tenant's pending-events index, newest first (nothing
    delivers this test's events before it looks)."""
    items: list[dict[str, Any]] = boto3.client("dynamodb").query(
        TableName=stack.table_name, IndexName="gsi1", ScanIndexForward=False, Limit=200,
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": keys.outbox_pending_gsi(tenant)}},
    )["Items"]  # fmt: skip
    return [{"source": i["source"]["S"], **json.loads(i["detail"]["S"])} for i in items
            if i["detail_type"]["S"] == f"{name}.v1" and needle in i["detail"]["S"]]  # fmt: skip


def _finished(stack, eid: str, tenant: str = TENANT) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [
        e for e in _outbox(stack, "encounter.finished", eid, tenant) if e["encounter_id"] == eid
    ]


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return new_patient(api)


def test_moving_to_finished_emits_it_once_and_a_correction_does_not(api, stack, pid):
    current = _create(api, pid, "planned")
    eid = current["id"]
    for status in ("arrived", "in-progress"):
        current = _move(api, current, status)
        assert _finished(stack, eid) == []
    current = _move(api, current, "finished")
    (event,) = _finished(stack, eid)
    assert event["source"] == "emr.encounters"
    assert (event["patient_id"], event["encounter_version"], event["tenant"]) == (pid, 4, TENANT)
    assert event["version"] == 1 and event["event_id"] and event["actor"]

    _move(api, current, "finished", end="2026-11-26T09:55:00Z")  # a correction: still finished
    assert len(_finished(stack, eid)) == 1


def test_an_encounter_documented_afterwards_emits_it_with_its_creation(api, stack, pid):
    created = _create(api, pid, "finished")
    (event,) = _finished(stack, created["id"])
    assert (event["encounter_version"], event["patient_id"]) == (1, pid)


def test_an_update_without_if_match_emits_it_as_well(api, stack, pid):
    current = _create(api, pid, "in-progress")
    assert _put(api, current, "finished").status_code == 200
    (event,) = _finished(stack, current["id"])
    assert event["encounter_version"] == 2
    assert _put(api, current, "finished").status_code == 200  # corrected, blind again
    assert len(_finished(stack, current["id"])) == 1


def test_refused_and_cancelled_changes_emit_nothing(api, stack, pid):
    planned = _create(api, pid, "planned")
    assert _put(api, planned, "finished", 'W/"1"').status_code == 409  # planned -> finished
    started = _move(api, _move(api, planned, "arrived"), "in-progress")
    assert _put(api, started, "finished", 'W/"1"').status_code == 412  # stale version
    assert _finished(stack, planned["id"]) == []
    cancelled = _create(api, pid, "in-progress")
    _move(api, cancelled, "cancelled")
    assert _finished(stack, cancelled["id"]) == []


def test_the_event_is_the_tenants_own(api, stack):
    other = new_patient(api, tenant="other-clinic")
    created = _create(api, other, "finished", tenant="other-clinic")
    assert _finished(stack, created["id"]) == []  # not in demo-clinic's outbox
    (event,) = _finished(stack, created["id"], tenant="other-clinic")
    assert event["tenant"] == "other-clinic"


# --- notes name their encounter ---------------------------------------------------------------


@pytest.fixture(scope="module")
def team(api, stack) -> dict[str, Staff]:  # type: ignore[no-untyped-def]
    supervisor = new_staff(api, stack, "supervisor")
    return {"supervisor": supervisor,
            "trainee": new_staff(api, stack, "clinician", supervisor=supervisor.ref)}  # fmt: skip


def test_signed_and_cosigned_notes_name_their_encounter_on_the_billing_queue(api, stack, team):
    runner = RecordingRunner(stack.stream_arn)
    trainee, supervisor = team["trainee"], team["supervisor"]
    pid = new_patient(api)
    eid = _create(api, pid, "finished")["id"]
    context = {"encounter": [{"reference": f"Encounter/{eid}"}]}
    note = draft(api, trainee, pid, context=context)
    assert operation(api, trainee, note["id"]).status_code == 200
    assert operation(api, supervisor, note["id"], "$cosign").status_code == 200
    loose = draft(api, supervisor, pid)  # a note of no encounter
    assert operation(api, supervisor, loose["id"]).status_code == 200

    (signed,) = _outbox(stack, "note.signed", note["id"])
    (cosigned,) = _outbox(stack, "note.cosigned", note["id"])
    assert signed["encounter_id"] == cosigned["encounter_id"] == eid
    (unlinked,) = _outbox(stack, "note.signed", loose["id"])
    assert unlinked["encounter_id"] is None

    runner.drain()
    take = queue_taker(stack.queue_urls["EmrBillingQueue"], "encounter_id")
    messages = take(eid, 3)
    assert sorted(m["detail-type"] for m in messages) == [
        "encounter.finished.v1", "note.cosigned.v1", "note.signed.v1"]  # fmt: skip
    assert {m["detail"]["patient_id"] for m in messages} == {pid}
