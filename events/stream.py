"""The table-stream consumer: publishes outbox events and keeps search entries tidy.

* INSERT of an `outbox` item -> one EventBridge PutEvents entry on the `emr` bus.
  Delivery is at-least-once (a retried batch may publish again); every event
  carries `event_id`, which consumers use as their idempotency key.
* MODIFY of a `resource` item whose blind-index tokens shrank -> conditional
  deletes of the entries the new version no longer has (models.resources).

Failures are reported per record (ReportBatchItemFailures) so one bad record
does not replay the whole batch.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from models.aws import client
from models.resources import Address, remove_stale_entries


class PublishFailed(Exception):
    pass


def bus_name() -> str:
    return os.environ.get("EMR_EVENT_BUS_NAME", "emr")


def publish(outbox: dict[str, Any]) -> None:
    entry = {
        "Source": outbox["source"],
        "DetailType": outbox["detail_type"],
        "Detail": outbox["detail"],
        "EventBusName": bus_name(),
    }
    resp = client("events").put_events(Entries=[entry])
    if resp.get("FailedEntryCount"):
        raise PublishFailed(str(resp["Entries"][0].get("ErrorCode")))


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


def handle_record(record: DynamoDBRecord) -> None:
    data = record.dynamodb
    if data is None:
        return
    new = data.new_image or {}
    old = data.old_image or {}
    kind = new.get("type") or old.get("type")
    if record.event_name == DynamoDBRecordEventName.INSERT and kind == "outbox":
        publish(new)
    elif record.event_name == DynamoDBRecordEventName.MODIFY and kind == "resource":
        tidy_search_entries(old, new)


# Even when every record fails, answer with batchItemFailures (Lambda then retries
# from the first one and bisects) rather than raising.
_processor = BatchProcessor(
    event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
)


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=handle_record, processor=_processor, context=context
    )
    return dict(response)
