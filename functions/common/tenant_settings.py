"""A clinic's own settings, kept by its administrator (`GET`/`PUT /admin/settings`).

* `unsigned_note_days`: after how many days a draft note counts as overdue for
  signing (1 to 90; 3 when never set).
* `psychotherapy_roles`: roles that may read every psychotherapy note of the
  clinic besides each note's author (functions/notes/access.py); only roles the
  psychotherapy policy row lets near those notes at all can be granted (the care
  roles: clinician, prescriber, supervisor). Empty when never set: authors only.

`get` serves checks on the request path from a small per-process cache: an entry
is used for at most `CACHE_SECONDS` (30 s) after it was read, so a change made by
the administrator reaches every warm function within 30 s (at once in the
process that made it: `put` refreshes its own cache). `read` (the settings
route) always makes the one consistent GetItem.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from functions.common.authz import POLICY, Op
from functions.common.errors import Invalid, Issue
from models import tenant_settings as store
from models.clock import iso, now

CACHE_SECONDS = 30.0
MIN_DAYS, MAX_DAYS = 1, 90
# The roles the psychotherapy-note policy row admits: no other role may be granted.
GRANTABLE_ROLES = frozenset(
    str(role) for role in POLICY[("DocumentReference", "psychotherapy")][Op.READ]
)


@dataclass(frozen=True)
class TenantSettings:
    unsigned_note_days: int = 3
    psychotherapy_roles: frozenset[str] = frozenset()


_lock = threading.Lock()
_cache: dict[str, tuple[float, TenantSettings]] = {}
clock = time.monotonic  # the cache's clock (seconds); tests may replace it


def read(tenant: str) -> TenantSettings:
    """The stored settings, or the defaults when none were ever stored (one
    consistent GetItem); refreshes the cache."""
    stored = store.read(tenant)
    settings = (
        TenantSettings()
        if stored is None
        else TenantSettings(stored.unsigned_note_days, stored.psychotherapy_roles)
    )
    _remember(tenant, settings)
    return settings


def get(tenant: str) -> TenantSettings:
    """As `read`, from the per-process cache when the entry is under 30 s old."""
    with _lock:
        cached = _cache.get(tenant)
    if cached is not None and clock() - cached[0] < CACHE_SECONDS:
        return cached[1]
    return read(tenant)


def put(tenant: str, settings: TenantSettings, actor: str) -> TenantSettings:
    """Replace the tenant's settings (one PutItem) and refresh this process's cache."""
    stored = store.StoredSettings(settings.unsigned_note_days, settings.psychotherapy_roles)
    store.write(tenant, stored, iso(now()), actor)
    _remember(tenant, settings)
    return settings


def forget() -> None:
    """Empty this process's cache (tests, or a function that must re-read at once)."""
    with _lock:
        _cache.clear()


def _remember(tenant: str, settings: TenantSettings) -> None:
    with _lock:
        _cache[tenant] = (clock(), settings)


# ----------------------------------------------------------------- JSON


FIELDS = ("unsignedNoteDays", "psychotherapyRoles")


def to_json(settings: TenantSettings) -> dict[str, Any]:
    return {
        "unsignedNoteDays": settings.unsigned_note_days,
        "psychotherapyRoles": sorted(settings.psychotherapy_roles),
    }


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_DAYS <= value <= MAX_DAYS:
        raise Invalid(
            Issue(
                "value",
                f"unsignedNoteDays must be a whole number from {MIN_DAYS} to {MAX_DAYS}.",
                ["unsignedNoteDays"],
            )
        )
    return value


def _roles(value: Any) -> frozenset[str]:
    allowed = ", ".join(sorted(GRANTABLE_ROLES))
    refused = Invalid(
        Issue(
            "value",
            f"psychotherapyRoles must be a list of distinct roles among {allowed}.",
            ["psychotherapyRoles"],
        )
    )
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise refused
    roles = frozenset(value)
    if len(roles) != len(value) or not roles <= GRANTABLE_ROLES:
        raise refused
    return roles


def from_json(body: dict[str, Any]) -> TenantSettings:
    """The whole set of settings from a PUT body; both fields are required and no
    other field is accepted (400 naming the field, never echoing its value)."""
    for name in body:
        if name not in FIELDS:
            raise Invalid(Issue("structure", "Unknown field.", [name]))
    for name in FIELDS:
        if name not in body:
            raise Invalid(Issue("required", f"{name} is required.", [name]))
    return TenantSettings(_days(body["unsignedNoteDays"]), _roles(body["psychotherapyRoles"]))
