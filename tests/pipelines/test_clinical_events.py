"""Events and stream tidying of the engine's types, observed as
tests/pipelines/test_outbox_to_eventbridge.py observes the Patient's: DynamoDB
stream (moto) -> StreamRunner -> the Chalice-registered `stream_publisher` ->
EventBridge bus `emr` -> the audit rule (every `emr.*` source) -> the audit queue."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from models import keys
from tests.conftest import patient_body
from tests.pipelines.conftest import (
    AUDIT_QUEUE,
    RecordingRunner,
    Take,
    empty_queue,
    queue_taker,
)

TENANT = "demo-clinic"
BASE = "/fhir/R4"
DETAIL_KEYS = {
    "version",
    "event_id",
    "tenant",
    "occurred_at",
    "actor",
    "request_id",
    "resource_type",
    "resource_id",
    "patient_id",
    "resource_version",
}


@pytest.fixture(scope="module")
def runner(stack) -> RecordingRunner:  # type: ignore[no-untyped-def]
    """One runner for the module, moved past the records of earlier tests (whose events
    those tests published themselves): each drain handles this module's records only."""
    return RecordingRunner(stack.stream_arn)


@pytest.fixture(scope="module")
def audit_queue(stack) -> Take:  # type: ignore[no-untyped-def]
    """`take(resource_id, expected)` -> the audit-queue messages about that resource."""
    url = stack.queue_urls[AUDIT_QUEUE]
    empty_queue(boto3.client("sqs"), url)
    return queue_taker(url, "resource_id")


# --- the types ------------------------------------------------------------------------------

DISPLAY = "Xylophonic test display text"


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": DISPLAY}], "text": DISPLAY}


@dataclass(frozen=True)
class Kind:
    name: str
    source: str
    writer: str
    deleter: str
    code: str  # a code the body carries, which no event may repeat

    def body(self, pid: str | None, tag: str) -> dict[str, Any]:
        ref = {"reference": f"Patient/{pid}"}
        snomed = "http://snomed.info/sct"
        return {
            "Encounter": {
                "resourceType": "Encounter",
                "status": "planned",
                "subject": ref,
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "type": [_coded(snomed, self.code)],
            },
            "Condition": {
                "resourceType": "Condition",
                "subject": ref,
                "code": _coded(snomed, self.code),
            },
            "AllergyIntolerance": {
                "resourceType": "AllergyIntolerance",
                "patient": ref,
                "code": _coded(snomed, self.code),
            },
            "Observation": {
                "resourceType": "Observation",
                "status": "final",
                "subject": ref,
                "code": _coded("http://loinc.org", self.code),
            },
            "MedicationRequest": {
                "resourceType": "MedicationRequest",
                # a reported record (history from elsewhere): what is exercised here is the engine,
                # not the prescribing rules (tests/api/test_medications_*.py)
                "reportedBoolean": True,
                "status": "active",
                "intent": "order",
                "subject": ref,
                "medicationCodeableConcept": _coded(
                    "http://www.nlm.nih.gov/research/umls/rxnorm", self.code
                ),
            },
            "Practitioner": {
                "resourceType": "Practitioner",
                "name": [{"family": f"Quillfeather{tag}", "given": ["Ysolde"]}],
                "identifier": [{"system": "urn:test:npi", "value": f"npi{tag}"}],
            },
        }[self.name]

    def __str__(self) -> str:
        return self.name


KINDS = [
    Kind("Encounter", "emr.encounters", "clinician", "supervisor", "185349003"),
    Kind("Condition", "emr.clinical", "clinician", "supervisor", "35489007"),
    Kind("AllergyIntolerance", "emr.clinical", "clinician", "supervisor", "91936005"),
    Kind("Observation", "emr.clinical", "clinician", "supervisor", "44249-1"),
    Kind("MedicationRequest", "emr.medications", "prescriber", "supervisor", "197361"),
    Kind("Practitioner", "emr.directory", "admin", "admin", "Ysolde"),
]


def _assert_no_phi(message: dict[str, Any], *values: str) -> None:
    raw = message["_raw"].lower()
    for value in values:
        assert value.lower() not in raw, f"{value!r} leaked into the event"


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_create_update_delete_stage_one_event_each_without_phi(api, runner, audit_queue, kind):
    tag = uuid.uuid4().hex[:10]
    family, given = f"Eventfamily{tag}", f"Eventgiven{tag}"
    pid = None
    if kind.name != "Practitioner":
        pid = api.create(patient_body(family, given, "1944-04-04"))["id"]
    body = kind.body(pid, tag)
    r = api.http.post(
        f"{BASE}/{kind.name}", headers=api.headers(kind.writer), body=json.dumps(body)
    )
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    rid = created["id"]
    url = f"{BASE}/{kind.name}/{rid}"
    # an order is deleted only once marked entered-in-error (functions/medications/rules.py)
    last = {"status": "entered-in-error"} if kind.name == "MedicationRequest" else {}
    r = api.http.put(
        url,
        headers=api.headers(kind.writer, If_Match='W/"1"'),
        body=json.dumps({**created, "language": "en", **last}),
    )
    assert r.status_code == 200, r.body
    assert api.http.delete(url, headers=api.headers(kind.deleter)).status_code == 204

    runner.drain()
    # each write's own event, and each request's audit record as phi.accessed
    taken = audit_queue(rid, 6)
    accessed = [m for m in taken if m["detail-type"] == "phi.accessed.v1"]
    messages = sorted(
        (m for m in taken if m not in accessed), key=lambda m: m["detail"]["resource_version"]
    )
    noun = kind.name.lower()
    assert [m["detail-type"] for m in messages] == [
        f"{noun}.created.v1",
        f"{noun}.updated.v1",
        f"{noun}.deleted.v1",
    ]
    assert sorted(m["detail"]["action"] for m in accessed) == sorted(
        f"{noun}.{verb}" for verb in ("create", "update", "delete")
    )
    for message in accessed:
        _assert_no_phi(message, family, given, "1944-04-04", DISPLAY, "Quillfeather", "Ysolde")
    for version, message in enumerate(messages, start=1):
        detail = message["detail"]
        assert message["source"] == kind.source
        assert set(detail) == DETAIL_KEYS
        assert detail["resource_type"] == kind.name
        assert detail["resource_id"] == rid
        assert detail["patient_id"] == pid
        assert detail["resource_version"] == version
        assert detail["tenant"] == TENANT
        _assert_no_phi(
            message,
            DISPLAY,
            family,
            given,
            "1944-04-04",
            kind.code,
            "Quillfeather",
            "Ysolde",
            f"npi{tag}",
        )
    assert len({m["detail"]["event_id"] for m in messages}) == 3


# --- stale search entries -------------------------------------------------------------------


def _entries(stack, pid: str, rid: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The Encounter's search entries in its patient's partition (raw DynamoDB)."""
    page = boto3.client("dynamodb").query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
        ExpressionAttributeValues={
            ":pk": {"S": keys.patient_pk(TENANT, pid)},
            ":s": {"S": keys.search_entry_prefix("Encounter", rid)},
        },
        ConsistentRead=True,
    )
    items: list[dict[str, Any]] = page["Items"]
    return items


def _found(api, query: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/Encounter?{query}", headers=api.headers())
    assert r.status_code == 200, r.body
    return [
        (e["resource"]["id"], e["resource"]["meta"]["versionId"])
        for e in json.loads(r.body)["entry"]
    ]


def _practitioner(api) -> str:  # type: ignore[no-untyped-def]
    """A live Practitioner of the tenant (encounters may only name one)."""
    body = {"resourceType": "Practitioner", "name": [{"family": "Tidy", "given": ["Doc"]}]}
    r = api.http.post(f"{BASE}/Practitioner", headers=api.headers("admin"), body=json.dumps(body))
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def _encounter(pid: str, practitioner: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "participant": [{"individual": {"reference": f"Practitioner/{practitioner}"}}],
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T10:00:00Z"},
    }


def test_an_update_that_drops_entry_tokens_has_them_removed_from_the_stream(api, stack, runner):
    pid = api.create(patient_body("Tidy" + uuid.uuid4().hex[:8]))["id"]
    old, new = _practitioner(api), _practitioner(api)
    r = api.http.post(
        f"{BASE}/Encounter",
        headers=api.headers(),
        body=json.dumps(_encounter(pid, old, "1999-01-02")),
    )
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    rid = created["id"]
    v1_entries = len(_entries(stack, pid, rid))
    assert _found(api, f"practitioner={old}") == [(rid, "1")]

    changed = {**created, **_encounter(pid, new, "2001-05-06")}
    r = api.http.put(
        f"{BASE}/Encounter/{rid}", headers=api.headers(If_Match='W/"1"'), body=json.dumps(changed)
    )
    assert r.status_code == 200, r.body
    stale = [e for e in _entries(stack, pid, rid) if e["version"]["N"] == "1"]
    assert stale, "the entries of the dropped tokens stay until the stream removes them"

    runner.drain()
    assert _found(api, f"practitioner={old}") == []
    assert _found(api, f"practitioner=Practitioner/{new}") == [(rid, "2")]
    assert _found(api, f"patient={pid}&date=2001-05-06") == [(rid, "2")]
    assert _found(api, f"patient={pid}&date=1999-01-02") == []
    left = _entries(stack, pid, rid)
    assert {e["version"]["N"] for e in left} == {"2"}
    assert len(left) == v1_entries  # one practitioner and year, month, day: as many as before


def test_an_update_that_keeps_its_tokens_leaves_every_entry_in_place(api, stack, runner):
    pid = api.create(patient_body("Keep" + uuid.uuid4().hex[:8]))["id"]
    practitioner = _practitioner(api)
    r = api.http.post(
        f"{BASE}/Encounter",
        headers=api.headers(),
        body=json.dumps(_encounter(pid, practitioner, "1998-03-04")),
    )
    created = json.loads(r.body)
    rid = created["id"]
    r = api.http.put(
        f"{BASE}/Encounter/{rid}",
        headers=api.headers(If_Match='W/"1"'),
        body=json.dumps({**created, "status": "cancelled"}),
    )
    assert r.status_code == 200, r.body
    runner.drain()
    assert _found(api, f"practitioner={practitioner}") == [(rid, "2")]
    entries = _entries(stack, pid, rid)
    assert entries and {e["version"]["N"] for e in entries} == {"2"}
