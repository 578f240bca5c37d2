"""Ledger entries to a CloudTrail Lake channel (functions/audit/cloudtrail_lake.py).
moto has no cloudtrail-data API, so botocore's Stubber stands in for the service:
it checks every request against the real PutAuditEvents shapes (and our exact
parameters) and answers with the real response shape."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from botocore.stub import Stubber

from functions.audit import cloudtrail_lake
from functions.audit.ledger import LedgerEvent, link
from models.aws import client
from models.ledger import GENESIS, Head

CHANNEL = "arn:aws:cloudtrail:us-east-1:111122223333:channel/0123abcd-4567-89ef-0123-456789abcdef"
AT = "2026-01-02T03:04:05.678Z"


def entries(n: int):  # type: ignore[no-untyped-def]
    events = [
        LedgerEvent(f"01J0000000000000000000000{i}", "demo-clinic", "emr.audit", "phi.accessed.v1",
                    AT, {"event_id": f"01J0000000000000000000000{i}", "tenant": "demo-clinic",
                         "occurred_at": AT, "actor": "sub-1", "request_id": "req-1", "version": 1,
                         "action": "patient.read", "outcome": "success", "status": 200,
                         "patient_id": "p-1", "patient_ids": ["p-1", "p-2"],
                         "source_ip": "10.1.2.3"})
        for i in range(n)
    ]  # fmt: skip
    return link(Head(0, GENESIS, ""), events, AT)


@pytest.fixture
def channel(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(cloudtrail_lake.CHANNEL_ENV, CHANNEL)
    with Stubber(client("cloudtrail-data")) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_each_entry_is_sent_in_the_integration_schema_with_its_checksum(channel):
    (entry,) = entries(1)
    event = cloudtrail_lake.audit_event(entry, "111122223333")
    channel.add_response(
        "put_audit_events",
        {"successful": [{"id": entry.event_id, "eventID": "ct-1"}], "failed": []},
        {"auditEvents": [event], "channelArn": CHANNEL},
    )
    assert cloudtrail_lake.send([entry]) == 1
    # botocore checks types and required members; the id's pattern is checked here.
    model = client("cloudtrail-data").meta.service_model.operation_model("PutAuditEvents")
    member = model.input_shape.members["auditEvents"].member.members["id"]
    assert re.fullmatch(member.metadata["pattern"], event["id"])
    digest = hashlib.sha256(event["eventData"].encode()).digest()
    assert event["eventDataChecksum"] == base64.b64encode(digest).decode()
    data = json.loads(event["eventData"])
    assert data["version"] == "1.0"
    assert data["userIdentity"] == {
        "type": "EmrUser", "principalId": "sub-1", "details": {"tenant": "demo-clinic"},
    }  # fmt: skip
    assert (data["eventSource"], data["eventName"], data["UID"]) == (
        "emr.audit", "phi.accessed", entry.event_id,
    )  # fmt: skip
    assert data["eventTime"] == "2026-01-02T03:04:05Z"
    assert data["recipientAccountId"] == "111122223333"
    assert data["sourceIPAddress"] == "10.1.2.3"
    assert data["requestParameters"]["patient_ids"] == ",p-1,p-2,"
    assert data["additionalEventData"]["ledgerHash"] == entry.hash


def test_more_than_100_entries_take_several_calls(channel):
    many = entries(3) * 50  # 150 entries: the same three, repeated
    for chunk in (many[:100], many[100:]):
        events = [cloudtrail_lake.audit_event(e, "111122223333") for e in chunk]
        ok = [{"id": e["id"], "eventID": "x"} for e in events]
        channel.add_response(
            "put_audit_events",
            {"successful": ok, "failed": []},
            {"auditEvents": events, "channelArn": CHANNEL},
        )
    assert cloudtrail_lake.send(many) == 150


def test_refused_events_raise_so_the_message_is_retried(channel):
    (entry,) = entries(1)
    channel.add_response(
        "put_audit_events",
        {
            "successful": [],
            "failed": [
                {
                    "id": entry.event_id,
                    "errorCode": "InvalidChecksum",
                    "errorMessage": "checksum does not match",
                }
            ],
        },
        {
            "auditEvents": [cloudtrail_lake.audit_event(entry, "111122223333")],
            "channelArn": CHANNEL,
        },
    )
    with pytest.raises(cloudtrail_lake.ChannelRefused, match="InvalidChecksum"):
        cloudtrail_lake.send([entry])


def test_nothing_is_sent_without_a_channel(monkeypatch):
    monkeypatch.delenv(cloudtrail_lake.CHANNEL_ENV, raising=False)
    with Stubber(client("cloudtrail-data")):  # any call would fail: nothing is stubbed
        assert cloudtrail_lake.send(entries(2)) == 0
