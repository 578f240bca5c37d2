"""Optional: each ledger entry also goes to a CloudTrail Lake channel (PutAuditEvents).

On when EMR_CLOUDTRAIL_CHANNEL_ARN names a channel (an integration of type
"custom" whose event data store compliance queries with SQL, docs/compliance.md).
`eventData` follows the CloudTrail Lake integration schema, with ids and codes
only: `userIdentity.principalId` is the user's id, `eventSource` the producing
workflow, `eventName` the event name, `UID` the event id, `requestParameters`
the event's ids and codes (strings), `additionalEventData` the ledger seq and
hash. `eventDataChecksum` is base64(SHA-256(eventData)), as the API defines it.

Delivery is at least once: a retried message sends its entry again with the same
`id` and `UID` (the event id), by which queries can tell repeats apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

from models.aws import client
from models.clock import now
from models.ledger import NewEntry, decode

CHANNEL_ENV = "EMR_CLOUDTRAIL_CHANNEL_ARN"
PER_CALL = 100  # PutAuditEvents takes 1 to 100 events
ENVELOPE = frozenset({"event_id", "tenant", "occurred_at", "actor", "version"})


class ChannelRefused(Exception):
    """CloudTrail Lake refused some events (their ids and error codes; no data)."""


def channel_arn() -> str | None:
    return os.environ.get(CHANNEL_ENV) or None


def _event_time(occurred_at: str) -> str:
    """`yyyy-MM-DDTHH:mm:ssZ` (UTC), as the schema asks."""
    try:
        moment = datetime.fromisoformat(occurred_at).astimezone(UTC)
    except ValueError:
        moment = now()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parameters(detail: dict[str, Any]) -> dict[str, str]:
    """The detail's ids and codes as strings (lists comma-joined, with a comma at
    each end so that SQL can match one id with LIKE '%,<id>,%')."""
    out: dict[str, str] = {}
    for key, value in sorted(detail.items()):
        if key in ENVELOPE or value is None or isinstance(value, dict):
            continue
        out[key] = f",{','.join(str(v) for v in value)}," if isinstance(value, list) else str(value)
    return out


def event_data(entry: NewEntry, account: str) -> dict[str, Any]:
    body = decode(entry.text)
    event = body["event"]
    detail: dict[str, Any] = event.get("detail") or {}
    name = str(event["detail_type"]).rpartition(".v")[0] or str(event["detail_type"])
    data: dict[str, Any] = {
        "version": "1.0",
        "userIdentity": {
            "type": "EmrUser",
            "principalId": str(detail.get("actor") or "system"),
            "details": {"tenant": str(event["tenant"])},
        },
        "eventSource": str(event["source"]),
        "eventName": name,
        "eventTime": _event_time(str(event["occurred_at"])),
        "UID": str(event["event_id"]),
        "requestParameters": _parameters(detail),
        "recipientAccountId": account,
        "additionalEventData": {
            "tenant": str(event["tenant"]),
            "ledgerSeq": str(body["seq"]),
            "ledgerHash": entry.hash,
            "detailType": str(event["detail_type"]),
        },
    }
    if detail.get("source_ip"):
        data["sourceIPAddress"] = str(detail["source_ip"])
    return data


def audit_event(entry: NewEntry, account: str) -> dict[str, str]:
    text = json.dumps(event_data(entry, account), separators=(",", ":"), sort_keys=True)
    checksum = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return {"id": entry.event_id, "eventData": text, "eventDataChecksum": checksum}


def send(entries: list[NewEntry]) -> int:
    """Put the entries on the channel (nothing when none is configured); the number sent."""
    arn = channel_arn()
    if arn is None or not entries:
        return 0
    account = arn.split(":")[4]
    for start in range(0, len(entries), PER_CALL):
        events = [audit_event(e, account) for e in entries[start : start + PER_CALL]]
        answer = client("cloudtrail-data").put_audit_events(auditEvents=events, channelArn=arn)
        failed = answer.get("failed") or []
        if failed:
            codes = ", ".join(f"{f.get('id')}:{f.get('errorCode')}" for f in failed[:5])
            raise ChannelRefused(f"{len(failed)} refused: {codes}")
    return len(entries)
