"""Transactional outbox: an event is an item written in the same transaction as
the change it reports; the table stream hands it to the publisher.

An outbox item is listed in gsi1 under `TENANT#t#OUTBOX#PENDING` (sorted by
occurrence) until the publisher has delivered it: `pending(tenant)` is what has
not reached the bus yet. Delivery (`mark_delivered`) removes that entry and sets
`delivered_at` and the TTL, so a delivered event is kept a day for inspection and
then removed by DynamoDB. An item is never given a TTL before its delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import UpdateError
from pynamodb.transactions import TransactWrite

from events.contracts import wire_detail_type
from events.envelope import DomainEvent
from models import keys
from models.clock import iso, now
from models.items import OutboxItem
from models.settings import storage_settings
from models.uow import MAX_ITEMS, UnitOfWork

RETENTION_AFTER_DELIVERY_S = 24 * 3600


def outbox_item(event: DomainEvent) -> OutboxItem:
    item = OutboxItem(
        keys.outbox_pk(event.tenant, event.event_id),
        keys.OUTBOX_SK,
        event_id=event.event_id,
        tenant=event.tenant,
        source=event.source,
        detail_type=wire_detail_type(event),
        detail=event.model_dump_json(),
        occurred_at=event.occurred_at,
    )
    item.gsi1pk = keys.outbox_pending_gsi(event.tenant)
    item.gsi1sk = keys.outbox_pending_sk(event.occurred_at, event.event_id)
    return item


def stage(uow: UnitOfWork, event: DomainEvent) -> None:
    uow.put("outbox", outbox_item(event), OutboxItem.pk.does_not_exist())


def _delivered(when: datetime) -> list[Any]:
    return [
        OutboxItem.delivered_at.set(iso(when)),
        OutboxItem.expires_at.set(int(when.timestamp()) + RETENTION_AFTER_DELIVERY_S),
        OutboxItem.gsi1pk.remove(),
        OutboxItem.gsi1sk.remove(),
    ]


def mark_delivered(pk: str, sk: str, at: datetime | None = None) -> bool:
    """One conditional UpdateItem: delivered, out of the pending index, TTL set.
    False when the item is gone (expired after an earlier delivery)."""
    try:
        OutboxItem(pk, sk).update(actions=_delivered(at or now()), condition=OutboxItem.pk.exists())
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


_connection: Connection | None = None


def _shared_connection() -> Connection:
    global _connection
    if _connection is None:
        _connection = Connection(region=storage_settings().region, max_retry_attempts=3)
    return _connection


def mark_all_delivered(keys: Sequence[tuple[str, str]], at: datetime | None = None) -> None:
    """Mark many at once: one TransactWriteItems per 100 items, each update conditional
    on the item existing. Raises when a transaction is cancelled (an item gone, a
    conflict): the caller then marks that batch's items one by one."""
    when = at or now()
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), MAX_ITEMS):
        with TransactWrite(connection=_shared_connection()) as tx:
            for pk, sk in unique[start : start + MAX_ITEMS]:
                tx.update(OutboxItem(pk, sk), actions=_delivered(when),
                          condition=OutboxItem.pk.exists())  # fmt: skip


def pending(tenant: str, limit: int = 1000) -> list[OutboxItem]:
    """The tenant's events not yet delivered, oldest first: one Query of gsi1 (a
    further page only past 1 MB of them), at most `limit`."""
    found = OutboxItem.gsi1.query(keys.outbox_pending_gsi(tenant), limit=limit)
    return [item for item in found if isinstance(item, OutboxItem)]
