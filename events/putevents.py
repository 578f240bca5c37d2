"""PutEvents in batches, with bounded retries of the entries that failed.

EventBridge takes at most 10 entries and 256 KiB per call and answers per entry:
an entry with an `ErrorCode` was not put although the call succeeded. Those
entries (and every entry of a call that raised, e.g. throttling) are sent again
after an exponential backoff with jitter, up to `attempts` sends in all;
`Publisher.publish` returns the positions that were still not delivered, for the
caller to fail its stream batch from the first of them. Log lines carry counts
and error codes only.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from models.aws import error_code

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emr"), child=True)

MAX_ENTRIES = 10
MAX_BYTES = 256 * 1024
ATTEMPTS = 4
BASE_DELAY_S = 0.05

Entry = dict[str, Any]
PutEvents = Callable[[list[Entry]], dict[str, Any]]


def bus_name() -> str:
    return os.environ.get("EMR_EVENT_BUS_NAME", "emr")


def entry_size(entry: Entry) -> int:
    """The size EventBridge counts: Source, DetailType, Detail and Resources in UTF-8,
    plus 14 bytes when Time is set."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    size += sum(len(str(r).encode()) for r in entry.get("Resources") or ())
    return size


def chunks(entries: Sequence[Entry], positions: Sequence[int]) -> Iterator[list[int]]:
    """`positions` in order, cut into calls of <= MAX_ENTRIES and <= MAX_BYTES."""
    call: list[int] = []
    size = 0
    for pos in positions:
        n = entry_size(entries[pos])
        if call and (len(call) == MAX_ENTRIES or size + n > MAX_BYTES):
            yield call
            call, size = [], 0
        call.append(pos)
        size += n
    if call:
        yield call


def _default_put(entries: list[Entry]) -> dict[str, Any]:
    from models.aws import client

    return dict(client("events").put_events(Entries=entries))


class Publisher:
    """`put_events` and `sleep` are injectable (fault and timing tests)."""

    def __init__(
        self,
        put_events: PutEvents | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
        base_delay_s: float = BASE_DELAY_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._put = put_events or _default_put
        self._sleep = sleep
        self._attempts = max(1, attempts)
        self._base = base_delay_s
        self._jitter = jitter
        self.calls = 0

    def delay(self, retry: int) -> float:
        """Before the `retry`-th resend (1, 2, ...): half of base * 2^(retry-1) fixed,
        half random ("equal jitter"), so concurrent publishers spread out."""
        ceiling = self._base * 2 ** (retry - 1)
        return ceiling / 2 + ceiling / 2 * self._jitter()

    def _send(self, entries: Sequence[Entry], positions: list[int]) -> list[int]:
        """One call; returns the positions that were not put."""
        self.calls += 1
        try:
            response = self._put([entries[pos] for pos in positions])
        except Exception as exc:  # the whole call failed: every entry is retried
            logger.warning(
                "PutEvents call failed",
                extra={"error": error_code(exc), "entries": len(positions)},
            )
            return positions
        results = response.get("Entries") or []
        failed = [
            pos
            for i, pos in enumerate(positions)
            if i >= len(results) or results[i].get("ErrorCode") or not results[i].get("EventId")
        ]
        if failed:
            codes = sorted({str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")})
            logger.warning(
                "PutEvents entries failed", extra={"failed": len(failed), "codes": codes}
            )
        return failed

    def publish(self, entries: Sequence[Entry]) -> set[int]:
        """Put every entry; the positions still undelivered after the last attempt."""
        todo = [pos for pos in range(len(entries)) if entry_size(entries[pos]) <= MAX_BYTES]
        too_large = set(range(len(entries))) - set(todo)
        if too_large:
            logger.error("events over the PutEvents size limit", extra={"count": len(too_large)})
        for attempt in range(self._attempts):
            if not todo:
                break
            if attempt:
                self._sleep(self.delay(attempt))
            todo = [pos for call in chunks(entries, todo) for pos in self._send(entries, call)]
        return set(todo) | too_large
