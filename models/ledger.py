"""The audit ledger's items and their reads and writes: one hash chain per tenant.

An entry is the canonical JSON of {seq, prev, recorded, event}, stored verbatim
with its SHA-256 (`hash`); `prev` is the hash of the entry before it. The head
item holds the last seq and hash. Appending is one TransactWriteItems: the head
(conditional on the seq it was read at, so concurrent writers cannot fork the
chain), the entries (`attribute_not_exists`) and one marker per event
(`attribute_not_exists`, so an event is never appended twice), and the entries'
patient copies (one per patient an entry names: the patient index) as far as
they fit in the transaction's 100 items; the rest are put right after. Copies are
derived data the chain does not depend on. The access patterns are in
models/README.md (rows L1-L7); the chain logic is in functions/audit/ledger.py
and functions/audit/verify.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from models import keys
from models.items import TableItem
from models.uow import MAX_ITEMS, UnitOfWork

GENESIS = "0" * 64  # the `prev` of a chain's first entry


def canonical(value: Any) -> str:
    """Sorted keys, no spaces, ASCII (non-ASCII escaped): one text for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def decode(text: str) -> dict[str, Any]:
    """An entry's JSON as an object (ValueError when it is not one)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a ledger entry is a JSON object")
    return value


class Gsi2(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class Gsi3(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "gsi3"
        projection = AllProjection()

    gsi3pk = UnicodeAttribute(hash_key=True)
    gsi3sk = UnicodeAttribute(range_key=True)


class LedgerEntryItem(TableItem, discriminator="ledger-entry"):
    """One link of the chain (pk `TENANT#t#LEDGER`, sk `L#<seq>`)."""

    # Its own PynamoDB connection: the base model's is built (with the indexes of the
    # classes known at that moment) on first use, which may be before this module
    # is imported, and would then not know gsi2 and gsi3.
    _connection = None

    tenant = UnicodeAttribute()
    seq = NumberAttribute()
    entry = UnicodeAttribute()  # the canonical JSON, verbatim: what `hash` is the SHA-256 of
    hash = UnicodeAttribute()
    event_id = UnicodeAttribute()
    gsi2pk = UnicodeAttribute(null=True)  # by user: absent when the actor is no valid id
    gsi2sk = UnicodeAttribute(null=True)
    gsi3pk = UnicodeAttribute()  # by time: the tenant's ledger, sk `<occurred_at>#<seq>`
    gsi3sk = UnicodeAttribute()
    gsi2 = Gsi2()
    gsi3 = Gsi3()


class LedgerHeadItem(TableItem, discriminator="ledger-head"):
    tenant = UnicodeAttribute()
    seq = NumberAttribute()
    hash = UnicodeAttribute()
    recorded = UnicodeAttribute()


class LedgerMarkerItem(TableItem, discriminator="ledger-marker"):
    tenant = UnicodeAttribute()
    event_id = UnicodeAttribute()
    seq = NumberAttribute()


class LedgerPatientItem(TableItem, discriminator="ledger-patient"):
    """An entry as it appears in one patient's index: a verbatim copy."""

    tenant = UnicodeAttribute()
    patient_id = UnicodeAttribute()
    seq = NumberAttribute()
    entry = UnicodeAttribute()
    hash = UnicodeAttribute()
    actor = UnicodeAttribute(null=True)


class LedgerCursorItem(TableItem, discriminator="ledger-cursor"):
    """What of a tenant's chain is archived; also its row in the ops index of ledgers
    (gsi1pk `OPS#LEDGER-TENANTS`, gsi1sk the tenant id: ids only)."""

    tenant = UnicodeAttribute()
    archived_seq = NumberAttribute(default=0)
    archived_hash = UnicodeAttribute(default=GENESIS)
    archived_day = UnicodeAttribute(null=True)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    recorded: str  # "" before the first entry


@dataclass(frozen=True)
class NewEntry:
    seq: int
    text: str
    hash: str
    event_id: str
    time_sk: str
    actor: str | None
    patient_ids: list[str] = field(default_factory=list)


def read_head(tenant: str) -> Head:
    try:
        item = LedgerHeadItem.get(keys.ledger_pk(tenant), keys.LEDGER_HEAD_SK, consistent_read=True)
    except LedgerHeadItem.DoesNotExist:
        return Head(0, GENESIS, "")
    return Head(int(item.seq), item.hash, item.recorded)


def _entry_item(tenant: str, new: NewEntry) -> LedgerEntryItem:
    item = LedgerEntryItem(
        keys.ledger_pk(tenant),
        keys.ledger_entry_sk(new.seq),
        tenant=tenant,
        seq=new.seq,
        entry=new.text,
        hash=new.hash,
        event_id=new.event_id,
        gsi3pk=keys.ledger_pk(tenant),
        gsi3sk=new.time_sk,
    )
    if new.actor is not None:
        item.gsi2pk, item.gsi2sk = keys.ledger_user_gsi(tenant, new.actor), new.time_sk
    return item


def _copy(tenant: str, new: NewEntry, patient_id: str) -> LedgerPatientItem:
    return LedgerPatientItem(
        keys.ledger_patient_pk(tenant, patient_id), new.time_sk, tenant=tenant,
        patient_id=patient_id, seq=new.seq, entry=new.text, hash=new.hash, actor=new.actor,
    )  # fmt: skip


Copy = tuple[NewEntry, str]  # an entry and one patient it names


def copies_of(entries: list[NewEntry]) -> list[Copy]:
    return [(new, patient_id) for new in entries for patient_id in new.patient_ids]


def commit(tenant: str, head: Head, entries: list[NewEntry], recorded: str) -> list[Copy]:
    """One TransactWriteItems: the head, the entries, their markers and as many of
    their patient copies as fit in 100 items; returns the copies left over (for
    `write_copies`). Raises TransactionCancelled naming `head`, `entry`, `cursor`
    or `marker:<event id>` when another writer got there first."""
    uow = UnitOfWork()
    last = entries[-1]
    new_head = LedgerHeadItem(
        keys.ledger_pk(tenant), keys.LEDGER_HEAD_SK, tenant=tenant, seq=last.seq, hash=last.hash,
        recorded=recorded,
    )  # fmt: skip
    if head.seq == 0:
        uow.put("head", new_head, LedgerHeadItem.pk.does_not_exist())
        cursor = LedgerCursorItem(keys.ledger_pk(tenant), keys.LEDGER_CURSOR_SK, tenant=tenant)
        cursor.gsi1pk, cursor.gsi1sk = keys.LEDGER_TENANTS, tenant
        uow.put("cursor", cursor, LedgerCursorItem.pk.does_not_exist())
    else:
        uow.put("head", new_head, LedgerHeadItem.seq == head.seq)
    for new in entries:
        uow.put("entry", _entry_item(tenant, new), LedgerEntryItem.pk.does_not_exist())
        marker = LedgerMarkerItem(
            keys.ledger_marker_pk(tenant, new.event_id), keys.LEDGER_MARKER_SK, tenant=tenant,
            event_id=new.event_id, seq=new.seq,
        )  # fmt: skip
        uow.put(f"marker:{new.event_id}", marker, LedgerMarkerItem.pk.does_not_exist())
    copies = copies_of(entries)
    room = max(0, MAX_ITEMS - len(uow))
    for new, patient_id in copies[:room]:
        uow.put("copy", _copy(tenant, new, patient_id))
    uow.commit()
    return copies[room:]


def write_copies(tenant: str, copies: list[Copy]) -> None:
    """Patient copies outside a transaction: idempotent PutItems."""
    for new, patient_id in copies:
        _copy(tenant, new, patient_id).save()


def appended_seq(tenant: str, event_id: str) -> int | None:
    """The seq an event was appended at (its marker), or None."""
    try:
        marker = LedgerMarkerItem.get(
            keys.ledger_marker_pk(tenant, event_id), keys.LEDGER_MARKER_SK, consistent_read=True
        )
    except LedgerMarkerItem.DoesNotExist:
        return None
    return int(marker.seq)


def get_entry(tenant: str, seq: int) -> LedgerEntryItem | None:
    try:
        return LedgerEntryItem.get(
            keys.ledger_pk(tenant), keys.ledger_entry_sk(seq), consistent_read=True
        )
    except LedgerEntryItem.DoesNotExist:
        return None


def chain(
    tenant: str, after_seq: int = 0, upto: int = keys.LEDGER_SEQ_MAX, page_size: int = 500
) -> Iterator[LedgerEntryItem]:
    """The entries after `after_seq` up to `upto`, in seq order (a Query a page, consistent)."""
    if upto <= after_seq:
        return iter(())
    lo, hi = keys.ledger_entry_sk(after_seq + 1), keys.ledger_entry_sk(upto)
    return LedgerEntryItem.query(
        keys.ledger_pk(tenant),
        LedgerEntryItem.sk.between(lo, hi),
        consistent_read=True,
        page_size=page_size,
    )
