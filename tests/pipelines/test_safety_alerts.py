"""Safety alerts end to end: a risky PHQ-9 submitted through the API -> its outbox event
on the table's stream -> the `emr` bus -> the alerts queue -> the alerts consumer
(the Lambda's own handler, Lambda-shaped batches) -> a task in the responsible
clinician's `GET /worklist` and one message on the tenant's SNS topic, read through
an SQS queue subscribed to it. Messages carry ids, codes and links, never PHI.
Duplicates make one task and one message; a crash between the task and its message
is repaired by the redelivery; escalation runs on an injected clock."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from devstack.queues import LambdaContext, lambda_record
from events.consumer import parse
from functions.alerts import escalation, notify
from functions.alerts.consumers import on_risk
from models import alerts
from tests.api.test_notes_workflow import Staff, new_staff
from tests.api.test_worklist import (
    acknowledge,
    note,
    raised,
    risky_patient,
    submit_risky,
    task_ids,
    worklist,
)
from tests.pipelines.conftest import RecordingRunner, queue_taker

FAMILY, BIRTH = "Zebulon", "1979-04-03"  # the patient's name and birth date: never in a message


@pytest.fixture(autouse=True)
def _dead_letters(stack, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMR_ALERTS_DLQ_URL", stack.queue_urls["EmrAlertsDLQ"])


class Subscriber:
    """An SQS queue subscribed to one tenant's alert topic (raw delivery)."""

    def __init__(self, tenant: str) -> None:
        self.sqs = boto3.client("sqs")
        self.url = self.sqs.create_queue(QueueName=f"alerts-sub-{uuid.uuid4().hex[:10]}")[
            "QueueUrl"
        ]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        boto3.client("sns").subscribe(
            TopicArn=notify.topic_arn(tenant), Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"], Attributes={"RawMessageDelivery": "true"},
        )  # fmt: skip
        self.received: list[dict[str, Any]] = []

    def _sweep(self) -> None:
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return
            for m in batch:
                self.received.append(m)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def messages(self, alert_id: str, kind: str, at_least: int = 1) -> list[dict[str, Any]]:
        """Every message of this alert and kind received so far (waiting for `at_least`)."""
        deadline = time.monotonic() + 10
        while True:
            self._sweep()
            found = [m for m in self.received
                     if (json.loads(m["Body"])["alert"], json.loads(m["Body"])["kind"])
                     == (alert_id, kind)]  # fmt: skip
            if len(found) >= at_least or time.monotonic() > deadline:
                return found


@pytest.fixture(scope="module")
def subscribers(stack) -> dict[str, Subscriber]:  # type: ignore[no-untyped-def]
    return {t: Subscriber(t) for t in ("demo-clinic", "other-clinic")}


@pytest.fixture
def runner(stack) -> RecordingRunner:  # type: ignore[no-untyped-def]
    return RecordingRunner(stack.stream_arn)


Deliver = Callable[[str, int], list[dict[str, Any]]]


@pytest.fixture
def deliver(stack, runner) -> Deliver:  # type: ignore[no-untyped-def]
    """Publish the stream, take the patient's events from the alerts queue and hand
    them to the alerts consumer Lambda (each batch `times` times: redeliveries)."""
    import app as app_module

    url = stack.queue_urls["EmrAlertsQueue"]
    arn = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    queue_arn = arn["Attributes"]["QueueArn"]
    take = queue_taker(url, "patient_id")

    def run(patient_id: str, times: int = 1) -> list[dict[str, Any]]:
        runner.drain()
        bodies = take(patient_id, 1)
        assert len(bodies) == 1, "one safety.risk-identified event per risky response"
        message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "local", "Body":
                   bodies[0]["_raw"], "Attributes": {"ApproximateReceiveCount": "1"}}  # fmt: skip
        event = {"Records": [lambda_record(message, queue_arn, "us-east-1")]}
        for _ in range(times):
            answer = app_module.alerts_consumer(event, LambdaContext("alerts_consumer", 60))
            assert answer == {"batchItemFailures": []}
        return bodies

    return run


def _no_phi(raw: str) -> None:
    assert FAMILY not in raw and BIRTH not in raw
    assert "Subjective" not in raw and "answer" not in raw


@pytest.mark.parametrize("tenant", ["demo-clinic", "other-clinic"])
def test_a_risky_phq9_reaches_its_clinicians_worklist_and_the_clinics_topic(
    api, stack, deliver, subscribers, tenant
):  # type: ignore[no-untyped-def]
    mine = new_staff(api, stack, "clinician", tenant)
    pid = risky_patient(api, tenant, family=FAMILY, birthDate=BIRTH)
    submit_risky(api, pid, tenant, author=mine)
    (event,) = deliver(pid)
    assert event["detail-type"] == "safety.risk-identified.v1"
    flag_id = event["detail"]["flag_id"]
    assert task_ids(api, mine) == [flag_id]
    (message,) = subscribers[tenant].messages(flag_id, notify.RAISED_KIND)
    _no_phi(message["Body"])
    body = json.loads(message["Body"])
    assert body["tenant"] == tenant and body["flag"] == f"Flag/{flag_id}"
    assert body["responsible"] == mine.ref and body["reason"] == "phq9-item9-positive"
    assert body["links"]["flag"].endswith(f"/fhir/R4/Flag/{flag_id}")
    assert body["links"]["worklist"].endswith("/worklist")
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"tenant": tenant, "kind": notify.RAISED_KIND}
    other = "other-clinic" if tenant == "demo-clinic" else "demo-clinic"
    assert subscribers[other].messages(flag_id, notify.RAISED_KIND, at_least=0) == []


def test_duplicates_make_one_task_and_one_message(api, stack, deliver, subscribers):  # type: ignore[no-untyped-def]
    mine = new_staff(api, stack, "clinician")
    pid = risky_patient(api, "demo-clinic")
    submit_risky(api, pid, "demo-clinic", author=mine)
    (event,) = deliver(pid, times=2)  # SQS delivered it twice
    received = parse(json.dumps({k: v for k, v in event.items() if k != "_raw"}))
    on_risk(received)  # and the handler ran again past the idempotency layer
    flag_id = received.detail["flag_id"]
    assert task_ids(api, mine) == [flag_id]
    subscribers["demo-clinic"].messages(flag_id, notify.RAISED_KIND)
    assert len(subscribers["demo-clinic"].messages(flag_id, notify.RAISED_KIND, 2)) == 1


def test_a_crash_between_task_and_message_is_repaired_by_the_redelivery(
    api, stack, runner, subscribers, monkeypatch
):  # type: ignore[no-untyped-def]
    mine = new_staff(api, stack, "clinician")
    pid = risky_patient(api, "demo-clinic")
    submit_risky(api, pid, "demo-clinic", author=mine)
    runner.drain()
    url = stack.queue_urls["EmrAlertsQueue"]
    (event,) = queue_taker(url, "patient_id")(pid, 1)
    received = parse(event["_raw"])
    monkeypatch.setenv(notify.PREFIX_ENV, "no such topic ")  # SNS refuses the name
    with pytest.raises(Exception, match="Invalid"):
        on_risk(received)
    flag_id = received.detail["flag_id"]
    assert task_ids(api, mine) == [flag_id]  # the task was written, the message was not
    monkeypatch.delenv(notify.PREFIX_ENV)
    on_risk(received)
    on_risk(received)
    assert len(subscribers["demo-clinic"].messages(flag_id, notify.RAISED_KIND, 2)) == 1
    assert task_ids(api, mine) == [flag_id]


# ----------------------------------------------------------------- escalation


def _raised_at(tenant: str, flag_id: str) -> datetime:
    state = alerts.read(tenant, flag_id)
    assert state is not None
    return datetime.fromisoformat(state.alert.raised_at.replace("Z", "+00:00"))


def _escalate(at: datetime) -> None:
    for _ in range(20):  # every alert due at `at`, 100 a run
        if escalation.run(now=at) == 0:
            return


@pytest.fixture
def trainee(api, stack) -> tuple[Staff, Staff]:  # type: ignore[no-untyped-def]
    supervisor = new_staff(api, stack, "supervisor")
    return new_staff(api, stack, "clinician", supervisor=supervisor.ref), supervisor


def test_an_unacknowledged_alert_escalates_to_the_supervisor_once(api, trainee, subscribers):  # type: ignore[no-untyped-def]
    mine, boss = trainee
    signal = raised(api, "demo-clinic", author=mine)
    start = _raised_at("demo-clinic", signal.flag_id)
    _escalate(start + timedelta(minutes=29))
    assert signal.flag_id not in task_ids(api, boss)
    _escalate(start + timedelta(minutes=31))
    r = json.loads(worklist(api, boss).body)
    (task,) = [e["resource"] for e in r["entry"] if e["resource"]["id"] == signal.flag_id]
    assert task["code"]["coding"][0]["code"] == "safety-alert-escalation"
    assert task["owner"] == {"reference": boss.ref}
    assert signal.flag_id in task_ids(api, mine)  # still the clinician's too
    _escalate(start + timedelta(minutes=45))
    sub = subscribers["demo-clinic"]
    (message,) = sub.messages(signal.flag_id, notify.ESCALATED_KIND)
    assert json.loads(message["Body"])["queue"] == boss.ref
    assert len(sub.messages(signal.flag_id, notify.ESCALATED_KIND, 2)) == 1
    assert acknowledge(api, signal.flag_id, note(), staff=boss).status_code == 200
    assert signal.flag_id not in task_ids(api, boss)
    assert signal.flag_id not in task_ids(api, mine)
    assert acknowledge(api, signal.flag_id, note(), staff=mine).status_code == 409


def test_an_acknowledged_alert_does_not_escalate(api, trainee, subscribers):  # type: ignore[no-untyped-def]
    mine, boss = trainee
    signal = raised(api, "demo-clinic", author=mine)
    assert acknowledge(api, signal.flag_id, note(), staff=mine).status_code == 200
    _escalate(_raised_at("demo-clinic", signal.flag_id) + timedelta(minutes=31))
    assert signal.flag_id not in task_ids(api, boss)
    assert subscribers["demo-clinic"].messages(signal.flag_id, notify.ESCALATED_KIND, 0) == []
    state = alerts.read("demo-clinic", signal.flag_id)
    assert state is not None and state.escalated is None and state.due is None


def test_without_a_supervisor_the_clinics_supervisors_get_it(api, stack):  # type: ignore[no-untyped-def]
    mine = new_staff(api, stack, "clinician", "other-clinic")
    signal = raised(api, "other-clinic", author=mine)
    _escalate(_raised_at("other-clinic", signal.flag_id) + timedelta(minutes=31))
    r = json.loads(worklist(api, role="supervisor", tenant="other-clinic").body)
    (task,) = [e["resource"] for e in r["entry"] if e["resource"]["id"] == signal.flag_id]
    assert task["code"]["coding"][0]["code"] == "safety-alert-escalation"
    assert acknowledge(api, signal.flag_id, note(), role="supervisor",
                       tenant="other-clinic").status_code == 200  # fmt: skip
    assert acknowledge(api, signal.flag_id, note(), role="supervisor",
                       tenant="demo-clinic").status_code == 404  # fmt: skip


def test_the_clinics_escalation_minutes_apply(api, stack):  # type: ignore[no-untyped-def]
    url, base = "/admin/settings", {"unsignedNoteDays": 3, "psychotherapyRoles": []}
    headers = api.headers("admin", "other-clinic")
    boss = new_staff(api, stack, "supervisor", "other-clinic")
    mine = new_staff(api, stack, "clinician", "other-clinic", supervisor=boss.ref)
    try:
        body = json.dumps({**base, "alertEscalationMinutes": 10})
        assert api.http.put(url, body=body, headers=headers).status_code == 200
        signal = raised(api, "other-clinic", author=mine)
    finally:
        api.http.put(url, body=json.dumps(base), headers=headers)
    _escalate(_raised_at("other-clinic", signal.flag_id) + timedelta(minutes=11))
    assert signal.flag_id in task_ids(api, boss)


def test_a_crash_before_the_escalations_message_is_repaired_by_the_next_run(
    api, trainee, subscribers, monkeypatch
):  # type: ignore[no-untyped-def]
    mine, boss = trainee
    signal = raised(api, "demo-clinic", author=mine)
    due = _raised_at("demo-clinic", signal.flag_id) + timedelta(minutes=31)
    monkeypatch.setenv(notify.PREFIX_ENV, "no such topic ")
    _escalate(due)  # escalated, but its message could not be sent
    assert signal.flag_id in task_ids(api, boss)
    state = alerts.read("demo-clinic", signal.flag_id)
    assert state is not None and state.due is not None and state.due.step == alerts.ESCALATED
    monkeypatch.delenv(notify.PREFIX_ENV)
    _escalate(due)
    _escalate(due)
    sub = subscribers["demo-clinic"]
    assert len(sub.messages(signal.flag_id, notify.ESCALATED_KIND, 2)) == 1
    assert task_ids(api, boss).count(signal.flag_id) == 1
