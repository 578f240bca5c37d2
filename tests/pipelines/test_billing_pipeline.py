"""Billing from events: the billing consumer (the Lambda's own `consumer.handle_batch`,
with SQS-shaped batches of EventBridge events) captures an encounter's charges exactly
once, whatever the order of `note.signed` and `encounter.finished`, however often each
arrives, and however many handlers race. End to end: signing through the API puts the
events on the stream, the bus routes them to the billing queue, the consumer charges.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from devstack.queues import LambdaContext, lambda_record
from events.encounters import EncounterFinished
from events.notes import NoteCosigned, NoteSigned
from functions.billing.consumers import consumer
from functions.billing.service import Outcome, capture
from models import billing
from models.clock import new_id
from tests.api.test_billing import (
    BASE,
    Visit,
    _worklist,
    charges_of,
    encounter,
    note,
    set_fees,
    visit,
)
from tests.api.test_notes_workflow import Staff, new_patient, new_staff
from tests.pipelines.conftest import RecordingRunner, eventbridge_body, queue_taker

TENANT = "demo-clinic"


@pytest.fixture(autouse=True)
def _dead_letters(stack, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMR_BILLING_DLQ_URL", stack.queue_urls["EmrBillingDLQ"])


@pytest.fixture(scope="module")
def clinician(api, stack) -> Staff:  # type: ignore[no-untyped-def]
    set_fees(api, TENANT)
    return new_staff(api, stack, "clinician")


def finished(v: Any) -> EncounterFinished:
    return EncounterFinished(tenant=TENANT, actor="user-1", request_id=new_id(),
                             encounter_id=v.encounter_id, patient_id=v.patient_id,
                             encounter_version=1)  # fmt: skip


def signed(v: Any, cls: type[NoteSigned] | type[NoteCosigned] = NoteSigned) -> Any:
    return cls(tenant=TENANT, actor="user-1", request_id=new_id(),
               resource_type="DocumentReference", note_id=v.note_id, patient_id=v.patient_id,
               note_version=2, provenance_id=new_id(), signer_id=new_id(),
               encounter_id=v.encounter_id)  # fmt: skip


QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:EmrBillingQueue"


def batch(*bodies: str, receives: int = 1, arn: str = QUEUE_ARN) -> dict[str, Any]:
    """A Lambda SQS event of these message bodies."""
    messages = [{"MessageId": str(uuid.uuid4()), "ReceiptHandle": "local", "Body": body,
                 "Attributes": {"ApproximateReceiveCount": str(receives)}}
                for body in bodies]  # fmt: skip
    return {"Records": [lambda_record(m, arn, "us-east-1") for m in messages]}


def deliver(*events: Any) -> None:
    """One batch of these events (each body as EventBridge delivers it)."""
    answer = consumer.handle_batch(batch(*(eventbridge_body(e) for e in events)),
                                   LambdaContext("billing_consumer", 60))  # fmt: skip
    assert answer == {"batchItemFailures": []}


def one_capture(api: Any, v: Any) -> list[str]:
    """The encounter's charges; exactly the set its capture guard names."""
    found = charges_of(api, v)
    captured, _ = billing.guards(TENANT, v.encounter_id)
    assert captured is not None
    assert sorted(c["id"] for c in found) == sorted(captured.charge_ids)
    return [c["code"]["coding"][0]["code"] for c in found]


def test_a_note_signed_before_the_encounter_finished_is_charged_by_the_later_event(api, clinician):  # type: ignore[no-untyped-def]
    pid = new_patient(api)
    eid = encounter(api, clinician, pid, status="in-progress")
    note_id = note(api, clinician, pid, eid)
    v = Visit(TENANT, pid, eid, note_id, ())
    deliver(signed(v))
    assert charges_of(api, v) == [] and billing.guards(TENANT, eid) == (None, None)

    current = json.loads(api.http.get(f"{BASE}/Encounter/{eid}", headers=clinician.headers()).body)
    body = {**current, "status": "finished",
            "period": {**current["period"], "end": "2026-03-02T10:40:00Z"}}  # fmt: skip
    r = api.http.put(f"{BASE}/Encounter/{eid}", body=json.dumps(body),
                     headers=clinician.headers(If_Match='W/"1"'))  # fmt: skip
    assert r.status_code == 200, r.body
    deliver(finished(v))
    assert one_capture(api, v) == ["90834"]  # 40 minutes
    deliver(signed(v), finished(v), signed(v, NoteCosigned))  # late and re-sent events
    assert one_capture(api, v) == ["90834"]


def test_duplicates_in_a_batch_and_across_batches_charge_once(api, clinician):
    v = visit(api, clinician, minutes=60)
    first, again = finished(v), signed(v)
    deliver(first, first, again, again)
    deliver(first, again)  # redelivered: idempotency, then the guard
    assert one_capture(api, v) == ["90837"]


def test_racing_handlers_charge_exactly_one_set(api, clinician):
    v = visit(api, clinician, minutes=45)
    events = [finished(v) if i % 2 else signed(v) for i in range(8)]  # distinct event ids
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, events))
    assert one_capture(api, v) == ["90834"]
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: capture(TENANT, v.encounter_id), range(6)))
    assert set(outcomes) == {Outcome.ALREADY}


def test_racing_captures_raise_one_set_of_work_items(api, clinician):
    v = visit(api, clinician, minutes=10)  # under 16 minutes: a work item, no charge
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: capture(TENANT, v.encounter_id), range(6)))
    assert outcomes.count(Outcome.CAPTURED) == 1
    assert set(outcomes) == {Outcome.CAPTURED, Outcome.ALREADY}
    assert [i["reason"] for i in _worklist(api, TENANT, v.encounter_id)] == [
        "psychotherapy-under-16-minutes"
    ]
    assert one_capture(api, v) == []


def test_a_crash_after_capture_before_the_acknowledgement_changes_nothing(api, clinician):
    v = visit(api, clinician, minutes=50)
    event = finished(v)
    assert capture(TENANT, v.encounter_id, event.event_id) is Outcome.CAPTURED  # then "died"
    deliver(event)  # the redelivery runs the handler again: the guard holds
    assert one_capture(api, v) == ["90834"]


def test_events_naming_no_known_encounter_do_nothing(api, clinician):
    v = visit(api, clinician, sign=False)
    deliver(finished(v))  # the note is still a draft
    unknown = Visit(TENANT, v.patient_id, f"{v.patient_id}.{new_id()}", v.note_id, ())
    without = signed(v).model_copy(update={"encounter_id": None})
    deliver(finished(unknown), without)
    assert charges_of(api, v) == [] and billing.guards(TENANT, v.encounter_id) == (None, None)


def test_signing_through_the_api_charges_through_stream_bus_and_queue(api, stack, clinician):
    import app as app_module

    runner = RecordingRunner(stack.stream_arn)
    v = visit(api, clinician, minutes=38)  # created finished, then its note signed
    runner.drain()
    url = stack.queue_urls["EmrBillingQueue"]
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    taken = queue_taker(url, "encounter_id")(v.encounter_id, 2)
    names = sorted(m["detail-type"] for m in taken)
    assert names == ["encounter.finished.v1", "note.signed.v1"]
    arn = attributes["Attributes"]["QueueArn"]
    event = batch(*(m["_raw"] for m in reversed(taken)), arn=arn)  # in reverse order
    for _ in range(2):  # and delivered twice
        answer = app_module.billing_consumer(event, LambdaContext("billing_consumer", 60))
        assert answer == {"batchItemFailures": []}
    assert one_capture(api, v) == ["90834"]
    assert "sleeping better" not in json.dumps(taken)  # ids travel, never the note's text
