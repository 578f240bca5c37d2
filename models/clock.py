"""Time and ids: UTC timestamps and time-sortable ULIDs.

A ULID (https://github.com/ulid/spec) is 48 bits of Unix time in milliseconds
and 80 random bits, written as 26 Crockford base-32 characters, so ids sort by
creation time. Generated here in a few lines: the python-ulid package cost about
50 ms of every cold start (it reads its own package metadata on import).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ulid(millis: int | None = None, randomness: int | None = None) -> str:
    """26 characters: 10 of time (ms), 16 of randomness."""
    ms = time.time_ns() // 1_000_000 if millis is None else millis
    rand = secrets.randbits(80) if randomness is None else randomness
    if not 0 <= ms < 1 << 48 or not 0 <= rand < 1 << 80:
        raise ValueError("a ULID holds 48 bits of time and 80 of randomness")
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id() -> str:
    return ulid()
