"""Unit of work: the writes of one use case, committed as one TransactWriteItems.

Use cases stage items (resource, history, search entries, audit record, outbox
event) and `commit()` sends them in a single round trip. When DynamoDB cancels
the transaction, `TransactionCancelled.failed` names the staged operations whose
condition failed, so the caller can answer 409/412 without guessing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from models.item_size import ITEM_MAX, TRANSACTION_ITEMS_MAX, TRANSACTION_MAX, item_size
from models.settings import storage_settings

MAX_ITEMS = TRANSACTION_ITEMS_MAX

_connection: Connection | None = None
_lock = threading.Lock()


def _shared_connection() -> Connection:
    global _connection
    if _connection is None:
        with _lock:
            if _connection is None:
                s = storage_settings()
                _connection = Connection(region=s.region, max_retry_attempts=3)
    return _connection


class TransactionCancelled(Exception):
    def __init__(self, failed: list[str]) -> None:
        super().__init__(f"transaction cancelled by: {', '.join(failed) or 'unknown'}")
        self.failed = failed


class WriteTooLarge(Exception):
    """The staged writes break one of DynamoDB's limits; nothing was sent."""

    def explain(self, what: str) -> str:
        return f"{what} is too large to store: {self}."


class TooManyItems(WriteTooLarge):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} items in one write, over DynamoDB's {TRANSACTION_ITEMS_MAX}")
        self.count = count


class ItemTooLarge(WriteTooLarge):
    def __init__(self, label: str, size: int) -> None:
        super().__init__(f"a {label} item of {size} bytes, over DynamoDB's {ITEM_MAX}")
        self.label, self.size = label, size


class TransactionTooLarge(WriteTooLarge):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes in one write, over DynamoDB's {TRANSACTION_MAX}")
        self.size = size


@dataclass
class UnitOfWork:
    # PynamoDB sends condition checks, deletes, puts, updates in that order;
    # keeping the same order here maps cancellation reasons back to labels.
    _checks: list[tuple[str, Any]] = field(default_factory=list)
    _deletes: list[tuple[str, Any]] = field(default_factory=list)
    _puts: list[tuple[str, Any]] = field(default_factory=list)

    def put(self, label: str, item: Model, condition: Condition | None = None) -> None:
        self._puts.append((label, (item, condition)))

    def delete(self, label: str, item: Model, condition: Condition | None = None) -> None:
        self._deletes.append((label, (item, condition)))

    def check(self, label: str, model: type[Model], pk: str, sk: str, condition: Condition) -> None:
        """A condition on an item the transaction does not write. DynamoDB refuses two
        operations on one item in a transaction, so a second check of the same item
        (two resources of one chart each checking their patient) is dropped: checks
        of one item by the engine state the same condition (exists, not deleted)."""
        if any((p, s) == (pk, sk) for _, (_, p, s, _) in self._checks):
            return
        self._checks.append((label, (model, pk, sk, condition)))

    def __len__(self) -> int:
        return len(self._checks) + len(self._deletes) + len(self._puts)

    def size(self) -> int:
        """DynamoDB's aggregate size of the items written (puts), in bytes; raises
        ItemTooLarge for the first item over the per-item limit."""
        total = 0
        for label, (item, _) in self._puts:
            size = item_size(item.serialize())
            if size > ITEM_MAX:
                raise ItemTooLarge(label, size)
            total += size
        return total

    def check_limits(self) -> None:
        """DynamoDB's transaction limits, checked before anything is sent (moto
        enforces none of them; AWS would cancel the whole write)."""
        if len(self) > MAX_ITEMS:
            raise TooManyItems(len(self))
        total = self.size()
        if total > TRANSACTION_MAX:
            raise TransactionTooLarge(total)

    def commit(self, token: str | None = None) -> None:
        self.check_limits()
        labels = [label for label, _ in self._checks + self._deletes + self._puts]
        try:
            with TransactWrite(connection=_shared_connection(), client_request_token=token) as tx:
                for _, (model, pk, sk, cond) in self._checks:
                    tx.condition_check(model, pk, sk, condition=cond)
                for _, (item, cond) in self._deletes:
                    tx.delete(item, condition=cond)
                for _, (item, cond) in self._puts:
                    tx.save(item, condition=cond)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            failed = [
                labels[i]
                for i, reason in enumerate(reasons)
                if reason is not None and reason.code == "ConditionalCheckFailed"
            ]
            if not failed:
                raise
            raise TransactionCancelled(failed) from exc
