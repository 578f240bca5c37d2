"""The chart's own items (docs/adr/0008-the-chart-in-one-query.md).

Beside a patient's resources, the chart holds small sealed summaries under
`C#<section>#...`, written in the same transaction as the change they summarise:

* entries keyed by resource (an active problem, medication, allergy, flag, plan),
  put while the resource is active and deleted in the write that ends it;
* rings of fixed size (the last 12 scores of an instrument): entry `n` of a ring
  takes slot `n % size`, and the ring's counter (`K#<ring>`, outside the chart's
  range) moves from `n` to `n + 1` in the same transaction, conditionally, so two
  writers never take one slot;
* packs (the 20 latest note headers): one item holding the section's entries,
  rewritten whole under a conditional version (below).

`read` is the chart's one Query: `C#` to `C$`, consistent, bounded by the sizes
above whatever the length of the record. It returns the entries still sealed,
so that the caller opens only what the reader may see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from models import keys
from models.crypto import envelope
from models.item_size import item_size
from models.items import ChartEntryItem, CounterItem, TableItem
from models.uow import UnitOfWork


def _aad(pk: str, sk: str) -> bytes:
    return f"{pk}|{sk}".encode()


def _seal(tenant: str, pk: str, sk: str, data_class: str, summary: dict[str, Any]) -> bytes:
    plaintext = json.dumps(summary, separators=(",", ":"), ensure_ascii=False).encode()
    return envelope().seal(plaintext, tenant=tenant, data_class=data_class, aad=_aad(pk, sk))


def stage_entry(
    uow: UnitOfWork,
    tenant: str,
    patient_id: str,
    key: str,
    data_class: str,
    summary: dict[str, Any] | None,
    seq: int | None = None,
) -> None:
    """Put (or, with no summary, delete) one chart entry in the write's transaction."""
    pk, sk = keys.patient_pk(tenant, patient_id), keys.chart_sk(key)
    if summary is None:
        uow.delete("chart", ChartEntryItem(pk, sk))
        return
    blob = _seal(tenant, pk, sk, data_class, summary)
    item = ChartEntryItem(pk, sk, tenant=tenant, patient_id=patient_id, key=key,
                          data_class=data_class, body=blob, seq=seq)  # fmt: skip
    uow.put("chart", item)


@dataclass(frozen=True)
class Ring:
    name: str  # counter name, e.g. "notes", "scores.phq-9"
    section: str  # chart key prefix of its slots, e.g. "3#note", "2#phq-9"
    size: int

    def slot_key(self, n: int) -> str:
        return f"{self.section}#{n % self.size:02d}"


def counter_keys(tenant: str, patient_id: str, ring: Ring) -> tuple[str, str]:
    return keys.patient_pk(tenant, patient_id), keys.counter_sk(ring.name)


def read_counters(tenant: str, patient_id: str, rings: list[Ring]) -> dict[str, int]:
    """The rings' counters (0 for a ring never written): one consistent BatchGetItem."""
    wanted = [counter_keys(tenant, patient_id, r) for r in rings]
    items = CounterItem.batch_get(wanted, consistent_read=True)
    found = {item.sk: int(item.value) for item in items}
    return {r.name: found.get(keys.counter_sk(r.name), 0) for r in rings}


def stage_ring_entry(
    uow: UnitOfWork,
    tenant: str,
    patient_id: str,
    ring: Ring,
    n: int,
    data_class: str,
    summary: dict[str, Any],
) -> None:
    """Entry `n` of the ring: slot `n % size`, and the counter `n -> n + 1`, both in
    the write's transaction; the transaction fails (as `counter`) when another
    writer took entry `n` first (read the counter again and retry)."""
    stage_entry(uow, tenant, patient_id, ring.slot_key(n), data_class, summary, seq=n)
    pk, sk = counter_keys(tenant, patient_id, ring)
    counter = CounterItem(pk, sk, tenant=tenant, value=n + 1)
    unchanged = CounterItem.pk.does_not_exist() if n == 0 else CounterItem.value == n
    uow.put("counter", counter, unchanged)


@dataclass(frozen=True)
class SealedEntry:
    key: str
    data_class: str
    seq: int | None
    blob: bytes
    pk: str
    sk: str
    tenant: str

    def open(self) -> dict[str, Any]:
        plaintext = envelope().open(self.blob, tenant=self.tenant, data_class=self.data_class,
                                    aad=_aad(self.pk, self.sk))  # fmt: skip
        summary: dict[str, Any] = json.loads(plaintext)
        return summary


@dataclass(frozen=True)
class ChartRead:
    entries: list[SealedEntry]
    bytes_read: int  # DynamoDB item sizes of what the Query returned (read units: 4 KB each)
    pages: int


def read(tenant: str, patient_id: str) -> ChartRead:
    """The chart's one Query (consistent): every entry, still sealed. Its size is
    bounded by the sections' bounds (ADR 0008), far under DynamoDB's 1 MB page; a
    second page would only follow a record that breaks those bounds."""
    pk = keys.patient_pk(tenant, patient_id)
    low, high = keys.chart_range()
    result = TableItem.query(pk, TableItem.sk.between(low, high), consistent_read=True)
    entries: list[SealedEntry] = []
    size = pages = 0
    for page in result.page_iter:
        pages += 1
        for raw in page.get("Items", []):
            size += item_size(raw)
            item = TableItem.from_raw_data(raw)
            if isinstance(item, ChartEntryItem):
                entries.append(SealedEntry(item.key, item.data_class,
                                           None if item.seq is None else int(item.seq),
                                           item.body, item.pk, item.sk, tenant))  # fmt: skip
    return ChartRead(entries, size, pages)


# ----------------------------------------------------------------- packed sections
# A section whose entries are read together and are small (the 20 latest note
# headers) is one item: one sealed list, newest first, and a version (`seq`) that
# every write moves from `v` to `v + 1` conditionally. The chart Query then reads
# one item (one data key, one set of key attributes) instead of 20; a write reads
# the pack first (in the BatchGetItem it already makes) and writes it whole.


@dataclass(frozen=True)
class Pack:
    key: str  # chart key of the item, e.g. "3#note"
    size: int  # entries kept, newest first


@dataclass(frozen=True)
class PackRead:
    entries: list[dict[str, Any]]  # newest first
    version: int | None  # None: never written


EMPTY = PackRead([], None)


def pack_keys(tenant: str, patient_id: str, pack: Pack) -> tuple[str, str]:
    return keys.patient_pk(tenant, patient_id), keys.chart_sk(pack.key)


def open_pack(item: ChartEntryItem) -> PackRead:
    sealed = SealedEntry(item.key, item.data_class, None, item.body, item.pk, item.sk, item.tenant)
    listed = sealed.open().get("entries")
    entries = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
    return PackRead(entries, None if item.seq is None else int(item.seq))


def stage_pack(
    uow: UnitOfWork,
    tenant: str,
    patient_id: str,
    pack: Pack,
    read: PackRead,
    entries: list[dict[str, Any]],
    data_class: str,
) -> None:
    """Write the pack's new entries (newest first, cut to its size), conditional on
    the pack still being the version read: a concurrent write fails the transaction
    (as `chart`), and the writer reads again."""
    pk, sk = pack_keys(tenant, patient_id, pack)
    body = {"entries": entries[: pack.size]}
    blob = _seal(tenant, pk, sk, data_class, body)
    version = (read.version or 0) + 1
    item = ChartEntryItem(pk, sk, tenant=tenant, patient_id=patient_id, key=pack.key,
                          data_class=data_class, body=blob, seq=version)  # fmt: skip
    unchanged = (ChartEntryItem.pk.does_not_exist() if read.version is None
                 else ChartEntryItem.seq == read.version)  # fmt: skip
    uow.put("chart", item, unchanged)
