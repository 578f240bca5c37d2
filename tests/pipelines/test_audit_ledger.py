"""The audit ledger on the local stack: a hash chain per tenant that concurrent
writers cannot fork and that holds each event once (functions/audit/ledger.py),
fed end to end by the audit pipeline (API -> stream -> bus -> audit queue ->
the audit consumer). Tampering: test_audit_ledger_verify.py."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from devstack.queues import LambdaContext, lambda_record
from functions.audit.ledger import LedgerEvent, append
from functions.audit.verify import verify
from models import keys
from models import ledger as store
from models.clock import iso, new_id, now
from tests.conftest import patient_body
from tests.pipelines.conftest import RecordingRunner, queue_taker


@pytest.fixture
def tenant(stack) -> str:  # type: ignore[no-untyped-def]
    return f"lg-{uuid.uuid4().hex[:12]}"


def phi_event(
    tenant: str,
    patient: str | None = "p-1",
    actor: str = "user-1",
    at: str | None = None,
    **extra: Any,
) -> LedgerEvent:
    event_id = new_id()
    occurred = at or iso(now())
    detail = {
        "event_id": event_id, "tenant": tenant, "occurred_at": occurred, "actor": actor,
        "request_id": event_id, "version": 1, "audit_id": event_id, "roles": ["clinician"],
        "action": "patient.read", "outcome": "success", "status": 200, "at": occurred,
        "patient_id": patient, **extra,
    }  # fmt: skip
    return LedgerEvent(event_id, tenant, "emr.audit", "phi.accessed.v1", occurred, detail)


def chain_ids(tenant: str) -> list[str]:
    return [store.decode(i.entry)["event"]["event_id"] for i in store.chain(tenant)]


def table(stack) -> Any:  # type: ignore[no-untyped-def]
    return boto3.resource("dynamodb").Table(stack.table_name)


def test_entries_link_each_to_the_hash_of_the_one_before(tenant):
    events = [phi_event(tenant) for _ in range(3)]
    entries = append(tenant, events)
    assert [e.seq for e in entries] == [1, 2, 3]
    bodies = [store.decode(e.text) for e in entries]
    assert bodies[0]["prev"] == store.GENESIS
    assert bodies[1]["prev"] == entries[0].hash and bodies[2]["prev"] == entries[1].hash
    assert all(store.digest(e.text) == e.hash for e in entries)
    assert [b["event"]["event_id"] for b in bodies] == [e.event_id for e in events]
    assert store.read_head(tenant).seq == 3 and store.read_head(tenant).hash == entries[2].hash
    report = verify(tenant)
    assert report.verified and report.entries == 3, report.to_json()


def test_recorded_never_goes_back_even_when_the_clock_does(tenant):
    later = datetime(2030, 1, 2, tzinfo=UTC)
    append(tenant, [phi_event(tenant)], at=later)
    second = append(tenant, [phi_event(tenant)], at=later - timedelta(hours=3))
    assert store.decode(second[0].text)["recorded"] == iso(later)
    assert verify(tenant).verified


def test_an_event_is_appended_once_however_often_it_arrives(tenant):
    event = phi_event(tenant)
    first = append(tenant, [event])
    again = append(tenant, [event, phi_event(tenant)])
    assert again[0].seq == first[0].seq and again[0].hash == first[0].hash
    assert chain_ids(tenant).count(event.event_id) == 1
    assert store.read_head(tenant).seq == 2


def test_concurrent_appenders_never_fork_the_chain(tenant):
    events = [[phi_event(tenant, patient=f"p-{w}") for _ in range(5)] for w in range(8)]
    shared = phi_event(tenant)  # every writer also appends this one
    errors: list[BaseException] = []

    def write(mine: list[LedgerEvent]) -> None:
        try:
            for event in [*mine[:2], shared, *mine[2:]]:
                append(tenant, [event])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(mine,)) for mine in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = chain_ids(tenant)
    expected = {e.event_id for mine in events for e in mine} | {shared.event_id}
    assert sorted(ids) == sorted(expected)  # every event once, none lost
    report = verify(tenant)
    assert report.verified and report.entries == 41 and report.head.seq == 41


def test_a_batch_is_one_transaction_and_large_searches_still_index_every_patient(tenant):
    wide = phi_event(tenant, patient=None, patient_ids=[f"w-{i}" for i in range(99)])
    entries = append(tenant, [phi_event(tenant), wide, phi_event(tenant)])
    assert [e.seq for e in entries] == [1, 2, 3]
    for patient in ("w-0", "w-50", "w-98"):
        copies = list(store.LedgerPatientItem.query(keys.ledger_patient_pk(tenant, patient)))
        assert [int(c.seq) for c in copies] == [2]
    assert verify(tenant).verified


def _sqs_batch(messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = "arn:aws:sqs:us-east-1:123456789012:EmrAuditQueue"
    return {"Records": [lambda_record({**m, "ReceiptHandle": "local",
                                       "Attributes": {"ApproximateReceiveCount": "1"}},
                                      arn, "us-east-1") for m in messages]}  # fmt: skip


def test_api_requests_reach_the_ledger_once_through_the_audit_pipeline(api, stack):
    import app as app_module

    runner = RecordingRunner(stack.stream_arn)
    take = queue_taker(stack.queue_urls["EmrAuditQueue"], "patient_id")
    created = api.create(patient_body("Ledgerperson"))
    pid = created["id"]
    assert api.http.get(f"/fhir/R4/Patient/{pid}", headers=api.headers()).status_code == 200
    runner.drain()
    # the create's audit record and patient.created, then the read's audit record
    messages = take(pid, 3)
    names = sorted(m["detail-type"] for m in messages)
    assert names == ["patient.created.v1", "phi.accessed.v1", "phi.accessed.v1"]
    bodies = [{"MessageId": str(uuid.uuid4()), "Body": m["_raw"]} for m in messages]
    context = LambdaContext("audit_consumer", 60)
    for _ in range(2):  # delivered twice: appended once
        answer = app_module.audit_consumer(_sqs_batch(bodies), context)
        assert answer == {"batchItemFailures": []}
    trail = api.http.get(f"/audit/AuditEvent?patient={pid}", headers=api.headers("compliance"))
    found = [e["resource"] for e in json.loads(trail.body)["entry"]]
    assert sorted(e["id"] for e in found) == sorted(m["detail"]["event_id"] for m in messages)
    kinds = sorted(e["type"]["code"] for e in found)
    assert kinds == ["patient.created", "rest", "rest"]
    report = json.loads(api.http.get("/audit/$verify", headers=api.headers("compliance")).body)
    assert report["verified"] is True, report


def test_the_ledger_indexes_work_whatever_was_imported_first(stack):
    """`make run` touches the table (seeding) before the app imports the ledger: the
    ledger's index queries must not depend on that order (a fresh interpreter)."""
    import os
    import subprocess
    import sys

    script = (
        "from models.items import TableItem\n"
        "TableItem._get_connection().get_meta_table()\n"
        "from models import ledger_index as ix\n"
        "ix.by_time('demo-clinic', ix.Window(), 1)\n"
        "ix.by_user('demo-clinic', 'u-1', ix.Window(), 1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
