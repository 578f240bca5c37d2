"""The encounter workflow: planned -> arrived -> in-progress -> finished / cancelled,
refused changes are 409 naming Encounter.status and change nothing, documented
times, service types, deletion rules; the status is guarded inside the write's own
transaction by a per-resource keyed MAC, never stored in clear."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import boto3
import pytest

from functions.encounters.workflow import SERVICE_TYPE_SYSTEM
from models import keys
from tests.conftest import patient_body

BASE = "/fhir/R4/Encounter"
START, END = "2026-11-26T09:00:00Z", "2026-11-26T09:50:00Z"


def _body(pid: str, status: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "serviceType": {
            "coding": [{"system": SERVICE_TYPE_SYSTEM, "code": "psychotherapy-individual"}]
        },
    }
    if status in ("in-progress", "finished"):
        body["period"] = {"start": START}
    if status == "finished":
        body["period"]["end"] = END
    body.update(extra)
    return body


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return str(api.create(patient_body("Workflow" + uuid.uuid4().hex[:8]))["id"])


def _create(api, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return api.http.post(BASE, body=json.dumps(body), headers=api.headers("front_desk"))


def _move(api, current: dict[str, Any], status: str, if_match: bool = True, **extra: Any):  # type: ignore[no-untyped-def]
    body = {**_body(current["subject"]["reference"][8:], status, **extra), "id": current["id"]}
    headers = {"If_Match": f'W/"{current["meta"]["versionId"]}"'} if if_match else {}
    return api.http.put(
        f"{BASE}/{current['id']}",
        body=json.dumps(body),
        headers=api.headers("clinician", **headers),
    )


def _issue(r) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    issue = json.loads(r.body)["issue"][0]
    return issue["code"], issue.get("expression", [])


def test_the_visit_goes_planned_arrived_in_progress_finished(api, pid):
    r = _create(api, _body(pid, "planned"))
    assert r.status_code == 201, r.body
    current = json.loads(r.body)
    for status in ("arrived", "in-progress", "finished"):
        r = _move(api, current, status)
        assert r.status_code == 200, (status, r.body)
        current = json.loads(r.body)
    assert current["status"] == "finished" and current["meta"]["versionId"] == "4"
    r = _move(api, current, "finished", period={"start": START, "end": "2026-11-26T09:55:00Z"})
    assert r.status_code == 200, r.body  # a finished encounter's times may be corrected


@pytest.mark.parametrize("if_match", [True, False])
@pytest.mark.parametrize(
    ("path", "refused"),
    [
        (["planned"], "finished"),
        (["planned"], "in-progress"),
        (["arrived"], "planned"),
        (["in-progress", "finished"], "in-progress"),
        (["planned", "cancelled"], "planned"),
        (["finished"], "cancelled"),
    ],
)
def test_a_change_the_workflow_does_not_allow_is_409_and_changes_nothing(
    api, pid, path, refused, if_match
):
    r = _create(api, _body(pid, path[0]))
    assert r.status_code == 201, r.body
    current = json.loads(r.body)
    for status in path[1:]:
        current = json.loads(_move(api, current, status).body)
    r = _move(api, current, refused, if_match=if_match)
    assert r.status_code == 409, r.body
    code, where = _issue(r)
    assert code == "business-rule" and where == ["Encounter.status"]
    assert path[-1] in json.loads(r.body)["issue"][0]["diagnostics"]
    now = json.loads(api.http.get(f"{BASE}/{current['id']}", headers=api.headers()).body)
    assert now["meta"]["versionId"] == current["meta"]["versionId"]
    assert now["status"] == path[-1]


def test_a_stale_if_match_is_still_412_not_409(api, pid):
    current = json.loads(_create(api, _body(pid, "planned")).body)
    assert _move(api, current, "arrived").status_code == 200
    assert _move(api, current, "finished").status_code == 412  # version 1 is stale


@pytest.mark.parametrize(
    ("status", "code"),
    [("cancelled", 409), ("triaged", 400), ("entered-in-error", 400)],
)
def test_a_new_encounter_starts_in_an_initial_status(api, pid, status, code):
    r = _create(api, _body(pid, status))
    assert r.status_code == code, r.body
    assert _issue(r)[1] == ["Encounter.status"]


@pytest.mark.parametrize(
    ("period", "where"),
    [
        ({}, ["Encounter.period.start", "Encounter.period.end"]),
        ({"start": START}, ["Encounter.period.end"]),
        ({"start": END, "end": START}, ["Encounter.period.end"]),
    ],
)
def test_a_finished_encounter_documents_its_start_and_end(api, pid, period, where):
    r = _create(api, _body(pid, "finished", period=period))
    assert r.status_code == 400, r.body
    issues = json.loads(r.body)["issue"]
    assert [e for i in issues for e in i["expression"]] == where


def test_service_types_of_this_system_are_checked(api, pid):
    bad = {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": "massage"}]}
    r = _create(api, _body(pid, "planned", serviceType=bad))
    assert r.status_code == 400
    assert _issue(r) == ("code-invalid", ["Encounter.serviceType.coding[0].code"])
    other = {"coding": [{"system": "http://snomed.info/sct", "code": "185345009"}]}
    assert _create(api, _body(pid, "planned", serviceType=other)).status_code == 201


def test_only_a_planned_or_cancelled_encounter_may_be_deleted(api, pid):
    supervisor = api.headers("supervisor")
    done = json.loads(_create(api, _body(pid, "finished")).body)
    r = api.http.delete(f"{BASE}/{done['id']}", headers=supervisor)
    assert r.status_code == 409 and _issue(r)[1] == ["Encounter.status"]
    assert api.http.get(f"{BASE}/{done['id']}", headers=api.headers()).status_code == 200
    planned = json.loads(_create(api, _body(pid, "planned")).body)
    assert api.http.delete(f"{BASE}/{planned['id']}", headers=supervisor).status_code == 204


def test_the_status_is_kept_as_a_per_resource_mac_never_in_clear(api, stack, pid):
    one = json.loads(_create(api, _body(pid, "planned")).body)
    two = json.loads(_create(api, _body(pid, "planned")).body)
    items = boto3.client("dynamodb").query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :p AND begins_with(sk, :r)",
        ExpressionAttributeValues={
            ":p": {"S": keys.patient_pk("demo-clinic", pid)},
            ":r": {"S": "R#Encounter#"},
        },
        ConsistentRead=True,
    )["Items"]
    states = {i["resource_id"]["S"]: i["state"]["S"] for i in items}
    assert set(states) == {one["id"], two["id"]}
    assert states[one["id"]] != states[two["id"]]  # same status, unrelated MACs
    assert not any("planned" in json.dumps(i, default=repr) for i in items)


def test_a_guarded_update_with_if_match_is_still_one_transaction(api, moto, pid):
    current = json.loads(_create(api, _body(pid, "planned")).body)
    _move(api, current, "arrived")  # warm
    current = json.loads(api.http.get(f"{BASE}/{current['id']}", headers=api.headers()).body)
    before = moto.counter.snapshot()
    assert _move(api, current, "in-progress").status_code == 200
    after = moto.counter.snapshot()
    calls = Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})
    assert calls == Counter({"dynamodb.TransactWriteItems": 1}), calls
