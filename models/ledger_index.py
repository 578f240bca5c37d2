"""The ledger's indexes and its archive cursors (models/README.md, rows L3-L7).

Every read is one Query per page, never a Scan:

* by patient: the patient's copies, pk `TENANT#t#LEDGER#PATIENT#p`, sk
  `<occurred_at>#<seq>` (the table itself: consistent, and a patient's last 100
  entries are one Query);
* by user: gsi2, `TENANT#t#LEDGER#USER#<actor>` / `<occurred_at>#<seq>`;
* by time: gsi3, `TENANT#t#LEDGER` / `<occurred_at>#<seq>`;
* the tenants that have a ledger: gsi1, `OPS#LEDGER-TENANTS` / `<tenant>` (ops, ids only).

Pages run newest first; a page's cursor is the sort key of the last item DynamoDB
read, and the next page starts below it in the same partition (a cursor cannot
name another tenant's partition: the partition comes from the caller's tenant).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pynamodb.expressions.condition import Condition

from models import keys
from models.ledger import LedgerCursorItem, LedgerEntryItem, LedgerPatientItem

Item = LedgerEntryItem | LedgerPatientItem


@dataclass(frozen=True)
class Window:
    """Which entries: `lo <= occurred_at < hi` (ISO-8601 UTC, either open), below `before`."""

    lo: str | None = None
    hi: str | None = None
    before: str | None = None  # a cursor: the time sort key to continue below


@dataclass(frozen=True)
class Page:
    items: list[Item]
    before: str | None  # the cursor of the next page, None on the last one


def _range(attr: Any, window: Window) -> Condition | None:
    if window.lo and window.hi:
        return attr.between(window.lo, window.hi)  # sort keys carry `#<seq>`: `hi` is excluded
    if window.lo:
        return attr >= window.lo
    if window.hi:
        return attr < window.hi
    return None


def _seq_of(cursor: str) -> int:
    return int(cursor.rsplit("#", 1)[1])


def _page(result: Any, model: type[Item], sort_attr: str) -> Page:
    raw = result.page_iter.next()
    items = [model.from_raw_data(i) for i in raw.get("Items", [])]
    last = raw.get("LastEvaluatedKey")
    return Page(items, str(last[sort_attr]["S"]) if last else None)


def by_patient(
    tenant: str, patient_id: str, window: Window, count: int, actor: str | None = None
) -> Page:
    pk = keys.ledger_patient_pk(tenant, patient_id)
    start = {"pk": {"S": pk}, "sk": {"S": window.before}} if window.before else None
    result = LedgerPatientItem.query(
        pk,
        _range(LedgerPatientItem.sk, window),
        filter_condition=(LedgerPatientItem.actor == actor) if actor else None,
        scan_index_forward=False,
        consistent_read=True,
        page_size=count,
        last_evaluated_key=start,
    )
    return _page(result, LedgerPatientItem, "sk")


def _entry_start(tenant: str, index_pk: tuple[str, str], window: Window) -> Any:
    if not window.before:
        return None
    pk_attr, value = index_pk
    return {
        pk_attr: {"S": value},
        pk_attr.replace("pk", "sk"): {"S": window.before},
        "pk": {"S": keys.ledger_pk(tenant)},
        "sk": {"S": keys.ledger_entry_sk(_seq_of(window.before))},
    }


def by_user(tenant: str, actor: str, window: Window, count: int) -> Page:
    gsi_pk = keys.ledger_user_gsi(tenant, actor)
    result = LedgerEntryItem.gsi2.query(
        gsi_pk,
        _range(LedgerEntryItem.gsi2sk, window),
        scan_index_forward=False,
        page_size=count,
        last_evaluated_key=_entry_start(tenant, ("gsi2pk", gsi_pk), window),
    )
    return _page(result, LedgerEntryItem, "gsi2sk")


def by_time(tenant: str, window: Window, count: int) -> Page:
    gsi_pk = keys.ledger_pk(tenant)
    result = LedgerEntryItem.gsi3.query(
        gsi_pk,
        _range(LedgerEntryItem.gsi3sk, window),
        scan_index_forward=False,
        page_size=count,
        last_evaluated_key=_entry_start(tenant, ("gsi3pk", gsi_pk), window),
    )
    return _page(result, LedgerEntryItem, "gsi3sk")


def in_order(tenant: str, window: Window, limit: int) -> Iterator[LedgerEntryItem]:
    """Oldest first, at most `limit` entries (an export): gsi3, a Query per 1,000."""
    return iter(
        LedgerEntryItem.gsi3.query(
            keys.ledger_pk(tenant),
            _range(LedgerEntryItem.gsi3sk, window),
            page_size=min(limit, 1000),
            limit=limit,
        )
    )


# --- archive cursors ------------------------------------------------------------------


def ledger_tenants() -> Iterator[str]:
    """Every tenant with a ledger (the ops index; a Query per page)."""
    for cursor in LedgerCursorItem.gsi1.query(keys.LEDGER_TENANTS):
        yield str(cursor.gsi1sk)


def read_cursor(tenant: str) -> LedgerCursorItem | None:
    try:
        return LedgerCursorItem.get(
            keys.ledger_pk(tenant), keys.LEDGER_CURSOR_SK, consistent_read=True
        )
    except LedgerCursorItem.DoesNotExist:
        return None


def advance_cursor(cursor: LedgerCursorItem, day: str, seq: int, hash_: str) -> None:
    """Mark `day` archived through `seq`; conditional on the cursor not having moved
    (a second run at the same time loses here and does nothing more)."""
    before = int(cursor.archived_seq)
    cursor.update(
        actions=[
            LedgerCursorItem.archived_seq.set(seq),
            LedgerCursorItem.archived_hash.set(hash_),
            LedgerCursorItem.archived_day.set(day),
        ],
        condition=LedgerCursorItem.archived_seq == before,
    )
