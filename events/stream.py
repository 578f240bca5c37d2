"""The table-stream consumer: publishes outbox events and audit records, and keeps
search entries tidy.

* INSERT of an `outbox` item -> a PutEvents entry (its stored source, wire
  detail-type `<name>.v<major>` and detail); once put, the item is marked
  delivered (events/outbox.py: out of the pending index, TTL set).
* INSERT of an `audit` or `audit-search` item -> a `phi.accessed.v1` entry
  (events/audit.py); `audit-copy` trail copies are not events.
* MODIFY of a `resource` item whose blind-index tokens shrank -> conditional
  deletes of the entries the new version no longer has (models.resources).

The entries of a whole batch are put together, 10 (and at most 256 KiB) per call
(events/putevents.py), failed entries retried with backoff. Whatever is still not
done is reported as ONE batch item failure: the first such record in stream
order. Lambda then retries the batch from that record (bisecting on error, up to
the mapping's retry limit, then the batch's description goes to `EmrStreamDLQ`),
so a record is never skipped silently. Records after it that were delivered may be
published again: delivery is at least once, and consumers are idempotent on
`event_id`. Log lines carry sequence numbers, counts and error codes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from events.putevents import Entry, Publisher, bus_name, logger
from models.resources import Address, remove_stale_entries


@dataclass(frozen=True)
class Outgoing:
    index: int  # the record's position in the batch
    entry: Entry
    outbox_key: tuple[str, str] | None  # (pk, sk) of the outbox item, to mark delivered


def outbox_entry(image: dict[str, Any]) -> Entry:
    return {
        "Source": str(image["source"]),
        "DetailType": str(image["detail_type"]),
        "Detail": str(image["detail"]),
        "EventBusName": bus_name(),
    }


def audit_entry(image: dict[str, Any]) -> Entry:
    from events.audit import phi_accessed
    from events.contracts import wire_detail_type

    event = phi_accessed(image)
    return {
        "Source": event.source,
        "DetailType": wire_detail_type(event),
        "Detail": event.model_dump_json(),
        "EventBusName": bus_name(),
    }


def tidy_search_entries(old: dict[str, Any], new: dict[str, Any]) -> int:
    dropped = set(old.get("tokens") or ()) - set(new.get("tokens") or ())
    if not dropped:
        return 0
    patient = new.get("patient_id")
    address = Address(
        str(new["tenant"]),
        str(new["resource_type"]),
        str(new["resource_id"]),
        str(patient) if patient else None,
    )
    return remove_stale_entries(address, dropped, int(new["version"]))


def _handle(index: int, record: DynamoDBRecord) -> Outgoing | None:
    """The record's event to put, if it has one; a MODIFY is tidied here."""
    from events.audit import AUDIT_TYPES

    data = record.dynamodb
    if data is None:
        return None
    new = data.new_image or {}
    kind = new.get("type") or (data.old_image or {}).get("type")
    if record.event_name == DynamoDBRecordEventName.INSERT and kind == "outbox":
        return Outgoing(index, outbox_entry(new), (str(new["pk"]), str(new["sk"])))
    if record.event_name == DynamoDBRecordEventName.INSERT and kind in AUDIT_TYPES:
        return Outgoing(index, audit_entry(new), None)
    if record.event_name == DynamoDBRecordEventName.MODIFY and kind == "resource":
        tidy_search_entries(data.old_image or {}, new)
    return None


def _sequence(record: DynamoDBRecord) -> str:
    data = record.dynamodb
    return str(data.sequence_number if data is not None else "")


def _failed(index: int, record: DynamoDBRecord, what: str, exc: BaseException) -> int:
    logger.error(
        f"stream record not done: {what}",
        extra={"sequence": _sequence(record), "error": type(exc).__name__},
    )
    return index


def _collect(records: list[DynamoDBRecord]) -> tuple[list[Outgoing], list[int]]:
    outgoing: list[Outgoing] = []
    failed: list[int] = []
    for index, record in enumerate(records):
        try:
            out = _handle(index, record)
        except Exception as exc:
            failed.append(_failed(index, record, "handling", exc))
            continue
        if out is not None:
            outgoing.append(out)
    return outgoing, failed


def _mark_one_by_one(outgoing: list[Outgoing], records: list[DynamoDBRecord]) -> list[int]:
    from events.outbox import mark_delivered

    failed: list[int] = []
    for out in outgoing:
        assert out.outbox_key is not None
        try:
            mark_delivered(*out.outbox_key)
        except Exception as exc:  # put again at the retry, then marked
            failed.append(_failed(out.index, records[out.index], "marking delivered", exc))
    return failed


def _mark(
    outgoing: list[Outgoing], undelivered: set[int], records: list[DynamoDBRecord]
) -> list[int]:
    """Mark the delivered outbox items (one transaction per 100; one by one when it is
    cancelled); the indexes of records not delivered or not marked."""
    from events.outbox import mark_all_delivered

    failed = [out.index for pos, out in enumerate(outgoing) if pos in undelivered]
    done = [out for pos, out in enumerate(outgoing)
            if pos not in undelivered and out.outbox_key is not None]  # fmt: skip
    try:
        mark_all_delivered([out.outbox_key for out in done if out.outbox_key is not None])
    except Exception as exc:
        logger.warning("outbox: marking in one transaction failed; one by one",
                       extra={"error": type(exc).__name__, "items": len(done)})  # fmt: skip
        failed += _mark_one_by_one(done, records)
    return failed


def handle_batch(
    event: dict[str, Any], context: Any = None, publisher: Publisher | None = None
) -> dict[str, Any]:
    """A Lambda stream batch -> `{"batchItemFailures": [first record not done]}`."""
    records = [DynamoDBRecord(raw) for raw in event.get("Records") or []]
    outgoing, failed = _collect(records)
    undelivered = (publisher or Publisher()).publish([out.entry for out in outgoing])
    failed += _mark(outgoing, undelivered, records)
    if not failed:
        return {"batchItemFailures": []}
    first = records[min(failed)]
    logger.error(
        "stream batch: records not done; the batch is retried from the first",
        extra={"records": len(records), "not_done": len(set(failed)), "from": _sequence(first)},
    )
    return {"batchItemFailures": [{"itemIdentifier": _sequence(first)}]}
