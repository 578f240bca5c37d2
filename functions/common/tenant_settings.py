"""A clinic's own settings, kept by its administrator (`GET`/`PUT /admin/settings`).

* `unsigned_note_days`: after how many days a draft note counts as overdue for
  signing (1 to 90; 3 when never set).
* `psychotherapy_roles`: roles that may read every psychotherapy note of the
  clinic besides each note's author (functions/notes/access.py); only roles the
  psychotherapy policy row lets near those notes at all can be granted (the care
  roles: clinician, prescriber, supervisor). Empty when never set: authors only.
* `alert_escalation_minutes`: after how many minutes an unacknowledged safety
  alert goes to the responsible clinician's supervisor (5 to 1440; 30 when never
  set, or when a PUT leaves it out; docs/alerts.md).
* `fee_schedule`: the clinic's fee per CPT code, in cents of USD (`feeSchedule` in
  JSON: code -> amount in dollars, at most 2 decimals); billing prices each charge
  from it (docs/billing.md). Empty when never set, or when a PUT leaves it out.

`get` serves checks on the request path from a small per-process cache: an entry
is used for at most `CACHE_SECONDS` (30 s) after it was read, so a change made by
the administrator reaches every warm function within 30 s (at once in the
process that made it: `put` refreshes its own cache). `read` (the settings
route) always makes the one consistent GetItem.
"""

from __future__ import annotations

import decimal
import re
import threading
import time
from dataclasses import dataclass, field
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
    alert_escalation_minutes: int = 30
    fee_schedule: dict[str, int] = field(default_factory=dict)  # CPT code -> cents


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
        else TenantSettings(
            stored.unsigned_note_days,
            stored.psychotherapy_roles,
            stored.alert_escalation_minutes or TenantSettings.alert_escalation_minutes,
            dict(stored.fee_schedule or {}),
        )
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
    stored = store.StoredSettings(
        settings.unsigned_note_days,
        settings.psychotherapy_roles,
        settings.alert_escalation_minutes,
        fee_schedule=dict(settings.fee_schedule) or None,
    )
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
OPTIONAL_FIELDS = ("alertEscalationMinutes", "feeSchedule")  # left out of a PUT: the default
MIN_ESCALATION, MAX_ESCALATION = 5, 24 * 60


def to_json(settings: TenantSettings) -> dict[str, Any]:
    return {
        "unsignedNoteDays": settings.unsigned_note_days,
        "psychotherapyRoles": sorted(settings.psychotherapy_roles),
        "alertEscalationMinutes": settings.alert_escalation_minutes,
        "feeSchedule": {c: _dollars(cents) for c, cents in sorted(settings.fee_schedule.items())},
    }


CPT_CODE = re.compile(r"^[0-9]{4}[0-9A-Z]$")
MAX_FEES, MAX_CENTS = 500, 10_000_000  # codes in a schedule; $100,000.00 a code


def _dollars(cents: int) -> int | float:
    return cents // 100 if cents % 100 == 0 else cents / 100


def _cents(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    exact = decimal.Decimal(str(value)) * 100
    cents = int(exact) if exact == exact.to_integral_value() else -1
    return cents if 0 <= cents <= MAX_CENTS else None


def _fees(value: Any) -> dict[str, int]:
    refused = Invalid(
        Issue("value", f"feeSchedule maps at most {MAX_FEES} CPT codes (e.g. 90834) to "
              "amounts in USD from 0 to 100000 with at most 2 decimals.", ["feeSchedule"])
    )  # fmt: skip
    if not isinstance(value, dict) or len(value) > MAX_FEES:
        raise refused
    fees = {code: _cents(amount) for code, amount in value.items()}
    if not all(CPT_CODE.match(code) and cents is not None for code, cents in fees.items()):
        raise refused
    return {code: cents for code, cents in fees.items() if cents is not None}


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


def _minutes(value: Any) -> int:
    low, high = MIN_ESCALATION, MAX_ESCALATION
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(
            Issue(
                "value",
                f"alertEscalationMinutes must be a whole number from {low} to {high}.",
                ["alertEscalationMinutes"],
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
    """The whole set of settings from a PUT body; the FIELDS are required, an
    OPTIONAL_FIELD left out takes its default, and no other field is accepted (400
    naming the field, never echoing its value)."""
    for name in body:
        if name not in FIELDS + OPTIONAL_FIELDS:
            raise Invalid(Issue("structure", "Unknown field.", [name]))
    for name in FIELDS:
        if name not in body:
            raise Invalid(Issue("required", f"{name} is required.", [name]))
    minutes = body.get("alertEscalationMinutes", TenantSettings.alert_escalation_minutes)
    days, roles = _days(body["unsignedNoteDays"]), _roles(body["psychotherapyRoles"])
    return TenantSettings(days, roles, _minutes(minutes), _fees(body.get("feeSchedule", {})))
