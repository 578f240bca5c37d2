"""The local stack's changes to moto's SQS, EventBridge and request dispatch
(devstack/moto_server.py) keep their behaviour and stop costing more as the
local queues fill."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from devstack import moto_server


@pytest.fixture
def sqs(stack):  # type: ignore[no-untyped-def]
    return boto3.client("sqs")


def _count_visible(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from moto.sqs.models import Message

    calls = [0]
    real = Message.visible

    def visible(self: Any) -> bool:
        calls[0] += 1
        result: bool = real.fget(self)  # type: ignore[attr-defined]
        return result

    monkeypatch.setattr(Message, "visible", property(visible))
    return calls


def test_sending_to_a_standard_queue_does_not_look_at_its_messages(sqs, monkeypatch):
    url = sqs.create_queue(QueueName="fill-" + uuid.uuid4().hex[:8])["QueueUrl"]
    for batch in range(30):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{batch}-{i}"} for i in range(10)],
        )
    calls = _count_visible(monkeypatch)
    sqs.send_message(QueueUrl=url, MessageBody="one more")
    assert calls[0] == 0
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "301"
    assert calls[0] > 0  # GetQueueAttributes still counts them
    sqs.delete_queue(QueueUrl=url)


def test_a_fifo_queue_still_deduplicates_by_content(sqs):
    url = sqs.create_queue(
        QueueName="dedup-" + uuid.uuid4().hex[:8] + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["same"]
    sqs.delete_queue(QueueUrl=url)


def test_put_events_parses_each_path_once_and_still_delivers(stack, sqs):
    events = boto3.client("events")
    name = "speedup-" + uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    source = "test." + name  # matches no rule of the template
    events.put_rule(
        Name=name, EventBusName=stack.event_bus_name, EventPattern=json.dumps({"source": [source]})
    )
    events.put_targets(
        Rule=name, EventBusName=stack.event_bus_name, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
    )
    detail = {"event_id": uuid.uuid4().hex}
    entry = {
        "Source": source,
        "DetailType": "speedup.checked",
        "Detail": json.dumps(detail),
        "EventBusName": stack.event_bus_name,
    }
    try:
        events.put_events(Entries=[entry])
        before = moto_server.PARSED_PATHS.cache_info()
        events.put_events(Entries=[entry])
        after = moto_server.PARSED_PATHS.cache_info()
        assert after.misses == before.misses and after.hits > before.hits
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        bodies = [json.loads(m["Body"]) for m in got]
        assert [(b["source"], b["detail"]) for b in bodies] == [(source, detail)] * 2
    finally:
        events.remove_targets(Rule=name, EventBusName=stack.event_bus_name, Ids=["q"])
        events.delete_rule(Name=name, EventBusName=stack.event_bus_name)
        sqs.delete_queue(QueueUrl=url)


def test_the_list_of_moto_modules_is_read_once():
    from moto import backends

    assert backends.list_of_moto_modules() is backends.list_of_moto_modules()
    assert "dynamodb" in backends.list_of_moto_modules()
