"""Transactional outbox: an event is an item written in the same transaction as
the change it reports; the table stream hands it to the publisher."""

from __future__ import annotations

from events.envelope import DomainEvent
from models import keys
from models.clock import now
from models.items import OutboxItem
from models.uow import UnitOfWork

RETENTION_S = 7 * 24 * 3600


def outbox_item(event: DomainEvent) -> OutboxItem:
    return OutboxItem(
        keys.outbox_pk(event.tenant, event.event_id),
        keys.OUTBOX_SK,
        event_id=event.event_id,
        tenant=event.tenant,
        source=event.source,
        detail_type=event.detail_type,
        detail=event.model_dump_json(),
        occurred_at=event.occurred_at,
        expires_at=int(now().timestamp()) + RETENTION_S,
    )


def stage(uow: UnitOfWork, event: DomainEvent) -> None:
    uow.put("outbox", outbox_item(event), OutboxItem.pk.does_not_exist())
