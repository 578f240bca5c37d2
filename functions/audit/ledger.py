"""Appending events to a tenant's audit ledger (docs/compliance.md).

`append` links each event into the chain: entry n holds the SHA-256 of entry n-1
(`prev`), and the head moves from n-1 to n only if nobody moved it meanwhile.
A writer that loses the race reads the head again and retries, so concurrent
appenders never fork the chain. Each event claims a marker keyed on its id in the
same transaction: an event already in the chain is found there and not appended
again (a redelivered message, a replay, two consumers racing).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from models import keys
from models import ledger as store
from models.aws import retryable
from models.clock import iso, now
from models.ledger import Head, NewEntry
from models.uow import MAX_ITEMS, TransactionCancelled

if TYPE_CHECKING:
    from events.consumer import Received

# Items of one transaction: the head, the cursor (first time), then per event its entry,
# its marker and one copy per patient it names.
BUDGET = MAX_ITEMS - 2
MAX_ATTEMPTS = 60


class LedgerBusy(Exception):
    """Too many writers for too long: the caller retries later (nothing was lost)."""


@dataclass(frozen=True)
class LedgerEvent:
    """What an entry records of an event: its envelope and its detail (ids and codes)."""

    event_id: str
    tenant: str
    source: str
    detail_type: str  # on the wire: "<name>.v<major>"
    occurred_at: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, received: Received) -> LedgerEvent:
        return cls(
            event_id=received.event_id,
            tenant=received.tenant,
            source=received.source,
            detail_type=f"{received.name}.v{received.major}",
            occurred_at=received.occurred_at,
            detail=dict(received.detail),
        )

    def body(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "source": self.source,
            "detail_type": self.detail_type,
            "occurred_at": self.occurred_at,
            "tenant": self.tenant,
            "detail": self.detail,
        }


def actor_of(detail: dict[str, Any]) -> str | None:
    actor = detail.get("actor")
    return actor if isinstance(actor, str) and keys.valid_id(actor) else None


def patients_of(detail: dict[str, Any]) -> list[str]:
    """Every patient an event names (`patient_id`, and a search's `patient_ids`)."""
    named = [detail.get("patient_id"), *(detail.get("patient_ids") or [])]
    return list(dict.fromkeys(p for p in named if isinstance(p, str) and keys.valid_id(p)))


def index_time(occurred_at: str, recorded: str) -> str:
    """`occurred_at` as sortable ISO-8601 UTC milliseconds (`recorded` if unreadable)."""
    try:
        return iso(datetime.fromisoformat(occurred_at))
    except (TypeError, ValueError):
        return recorded


def link(head: Head, events: list[LedgerEvent], recorded: str) -> list[NewEntry]:
    """The entries that follow `head`, in order: each names the hash of the one before."""
    out: list[NewEntry] = []
    seq, prev = head.seq, head.hash
    for event in events:
        seq += 1
        text = store.canonical(
            {"seq": seq, "prev": prev, "recorded": recorded, "event": event.body()}
        )
        entry_hash = store.digest(text)
        out.append(
            NewEntry(
                seq=seq,
                text=text,
                hash=entry_hash,
                event_id=event.event_id,
                time_sk=keys.ledger_time_sk(index_time(event.occurred_at, recorded), seq),
                actor=actor_of(event.detail),
                patient_ids=patients_of(event.detail),
            )
        )
        prev = entry_hash
    return out


def append(tenant: str, events: list[LedgerEvent], at: datetime | None = None) -> list[NewEntry]:
    """Append the events (in order, each once) and return their entries, including
    those of events that were already in the chain. `at` fixes the append time
    (tests); `recorded` never goes back, whatever the clock says."""
    if any(e.tenant != tenant for e in events):
        raise ValueError("an event of another tenant")
    unique = list({e.event_id: e for e in events}.values())
    done: list[NewEntry] = []
    for batch in batches(unique):
        done += _append_some(tenant, batch, at)
    return done


def batches(events: list[LedgerEvent]) -> list[list[LedgerEvent]]:
    """Consecutive events whose items fit one transaction (an event naming more
    patients than fit goes alone; its other copies are written after)."""
    out: list[list[LedgerEvent]] = []
    used = BUDGET
    for event in events:
        cost = 2 + len(patients_of(event.detail))
        if used + cost > BUDGET:
            out.append([])
            used = 0
        out[-1].append(event)
        used += cost
    return out


def _append_some(tenant: str, events: list[LedgerEvent], at: datetime | None) -> list[NewEntry]:
    pending, done = list(events), []
    for attempt in range(MAX_ATTEMPTS):
        head = store.read_head(tenant)
        recorded = max(iso(at or now()), head.recorded)
        entries = link(head, pending, recorded)
        try:
            left_over = store.commit(tenant, head, entries, recorded)
        except TransactionCancelled as cancelled:
            seen = {f.partition(":")[2] for f in cancelled.failed if f.startswith("marker:")}
            done += [already(tenant, e.event_id) for e in pending if e.event_id in seen]
            pending = [e for e in pending if e.event_id not in seen]
            if not pending:
                return done
            _pause(attempt)
            continue
        except Exception as exc:
            if not retryable(exc):
                raise
            _pause(attempt)
            continue
        store.write_copies(tenant, left_over)
        return done + entries
    raise LedgerBusy(f"ledger of {tenant}: head still moving after {MAX_ATTEMPTS} attempts")


def already(tenant: str, event_id: str) -> NewEntry:
    """The entry of an event already in the chain; its patient copies are written
    again (idempotent), in case the appender stopped between the two writes."""
    seq = store.appended_seq(tenant, event_id)
    item = store.get_entry(tenant, seq) if seq is not None else None
    if item is None:
        raise LedgerBusy(f"ledger of {tenant}: marker without its entry (event {event_id})")
    event = store.decode(item.entry)["event"]
    entry = NewEntry(
        seq=int(item.seq),
        text=item.entry,
        hash=item.hash,
        event_id=event_id,
        time_sk=item.gsi3sk,
        actor=actor_of(event.get("detail") or {}),
        patient_ids=patients_of(event.get("detail") or {}),
    )
    store.write_copies(tenant, store.copies_of([entry]))
    return entry


def _pause(attempt: int) -> None:
    """Full jitter, growing to at most 0.2 s: the writers spread out."""
    ceiling_ms = min(200, 5 * 2 ** min(attempt, 6))
    time.sleep(secrets.randbelow(ceiling_ms + 1) / 1000)
