"""Recompute a tenant's ledger and report the first broken or missing link.

`check` is the whole rule, over entries in seq order (no I/O); `verify` feeds it
the stored chain, a Query per page, up to the head it read first (entries
appended while it runs are left for the next run).

What each reason says about the entry at `seq`:
  missing        no entry at this seq, though a later entry (or the head) exists;
  hash-mismatch  its stored text no longer hashes to its stored hash (edited);
  malformed      its text is not an entry (not JSON, or no seq/prev);
  seq-mismatch   its text names another seq (an entry moved or copied);
  prev-mismatch  its `prev` is not the hash of the entry before it (that one, or
                 this one, was rewritten together with its hash);
  head-mismatch  the head does not name the last entry (its seq or hash differ).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from models import ledger as store
from models.ledger import GENESIS, Head


@dataclass(frozen=True)
class Link:
    seq: int
    text: str
    hash: str


@dataclass(frozen=True)
class Broken:
    seq: int
    reason: str


@dataclass(frozen=True)
class Report:
    tenant: str
    entries: int
    head: Head
    first_broken: Broken | None

    @property
    def verified(self) -> bool:
        return self.first_broken is None

    def to_json(self) -> dict[str, Any]:
        broken = self.first_broken
        return {
            "tenant": self.tenant,
            "verified": self.verified,
            "entries": self.entries,
            "head": {"seq": self.head.seq, "hash": self.head.hash},
            "first_broken": {"seq": broken.seq, "reason": broken.reason} if broken else None,
        }


def _link_fault(link: Link, expected: int, prev: str) -> Broken | None:
    if link.seq != expected:
        return Broken(expected, "missing")
    if store.digest(link.text) != link.hash:
        return Broken(link.seq, "hash-mismatch")
    try:
        body = store.decode(link.text)
        named_seq, named_prev = body["seq"], body["prev"]
    except (ValueError, KeyError):
        return Broken(link.seq, "malformed")
    if named_seq != link.seq:
        return Broken(link.seq, "seq-mismatch")
    if named_prev != prev:
        return Broken(link.seq, "prev-mismatch")
    return None


def _head_fault(head: Head, last_seq: int, last_hash: str) -> Broken | None:
    if head.seq > last_seq:
        return Broken(last_seq + 1, "missing")
    if head.seq < last_seq or head.hash != last_hash:
        return Broken(head.seq, "head-mismatch")
    return None


def check(tenant: str, head: Head, links: Iterable[Link]) -> Report:
    """Walk the links (seq order) against the head; the first fault wins."""
    expected, prev, count = 1, GENESIS, 0
    broken: Broken | None = None
    for link in links:
        count += 1
        if broken is None:
            broken = _link_fault(link, expected, prev)
        expected, prev = link.seq + 1, link.hash
    if broken is None:
        broken = _head_fault(head, expected - 1, prev)
    return Report(tenant, count, head, broken)


def verify(tenant: str) -> Report:
    head = store.read_head(tenant)
    links = (
        Link(int(item.seq), item.entry, item.hash) for item in store.chain(tenant, upto=head.seq)
    )
    report = check(tenant, head, links)
    if report.verified and _beyond_head(tenant, head):
        return Report(tenant, report.entries, head, Broken(head.seq + 1, "head-mismatch"))
    return report


def _beyond_head(tenant: str, head: Head) -> bool:
    """An entry past the head that no append accounts for (the head did not move)."""
    if store.get_entry(tenant, head.seq + 1) is None:
        return False
    return store.read_head(tenant).seq == head.seq
