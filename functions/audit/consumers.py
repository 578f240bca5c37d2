"""The audit consumer: every known event on the bus is appended to its tenant's ledger.

The audit queue receives every `emr.*` event (rule EmrAuditRule), including the
`phi.accessed` events the stream publisher makes of the API's audit records. The
handler is safe to run twice: the ledger's marker on the event id appends each
event once, and a second run only rewrites the entry's patient copies and sends
it to the CloudTrail Lake channel (when one is configured) again.
"""

from __future__ import annotations

from events.consumer import Consumer, Received
from events.contracts import all_contracts
from functions.audit import cloudtrail_lake
from functions.audit.ledger import LedgerEvent, append


def record(received: Received) -> None:
    entries = append(received.tenant, [LedgerEvent.of(received)])
    cloudtrail_lake.send(entries)


consumer = Consumer(
    "audit",
    {name: record for name, _major, _model in all_contracts()},
    dlq_env="EMR_AUDIT_DLQ_URL",
)
