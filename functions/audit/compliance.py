"""Compliance queries over the ledger: by patient, by user (agent), by time, newest first.

`GET /audit/AuditEvent?patient=|agent=|date=...[&_count][&_cursor]` (R4 AuditEvent
search parameter names). `date` is when the event occurred (`period`), with the
prefixes eq, ge, gt, le, lt, repeatable (`date=ge2026-01-01&date=lt2026-02-01`).
Each page is one Query: the patient's copies (with `agent` as a filter), else the
user index, else the time index (models/ledger_index.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from functions.audit.render import audit_event
from functions.audit.verify import Report, verify
from functions.common.audit import AuditDraft
from functions.common.errors import Invalid, Issue
from functions.engine.values import date_range
from models import keys
from models import ledger_index as index
from models.clock import iso
from models.ledger_index import Window

SEARCH = "AuditEvent.search"
SUPPORTED = ("patient", "agent", "date", "_count", "_cursor")
PREFIXES = ("eq", "ge", "gt", "le", "lt")
DEFAULT_COUNT, MAX_COUNT = 50, 100


def bad(param: str, message: str, code: str = "invalid", where: str = SEARCH) -> Invalid:
    return Invalid(Issue(code, message, [f"{where}.{param}"]))


@dataclass(frozen=True)
class LedgerQuery:
    patient: str | None
    agent: str | None
    window: Window
    count: int
    empty: bool = False  # the dates exclude each other


def _one(params: dict[str, list[str]], name: str, where: str = SEARCH) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise bad(name, f"{name} may be given once.", where=where)
    return values[0] if values else None


def _id(params: dict[str, list[str]], name: str, prefix: str) -> str | None:
    value = _one(params, name)
    if value is None:
        return None
    value = value.removeprefix(prefix)
    if not keys.valid_id(value):
        raise bad(name, f"{name} must be an id.")
    return value


def bounds(value: str, param: str, where: str = SEARCH) -> tuple[datetime, datetime]:
    """[lo, hi) of a FHIR date, dateTime or instant; 400 naming `param` otherwise."""
    found = date_range(value)
    if found is None:
        raise bad(param, f"{param} must be a FHIR date or dateTime.", where=where)
    return found.lo, found.hi


def _dates(values: list[str]) -> tuple[str | None, str | None, bool]:
    lo: datetime | None = None
    hi: datetime | None = None
    for value in values:
        prefix = value[:2] if value[:2].isalpha() else "eq"
        if prefix not in PREFIXES:
            raise bad("date", "date prefixes: eq, ge, gt, le, lt.")
        start, end = bounds(value[2:] if value[:2].isalpha() else value, "date")
        low = {"eq": start, "ge": start, "gt": end}.get(prefix)
        high = {"eq": end, "le": end, "lt": start}.get(prefix)
        lo = low if low is not None and (lo is None or low > lo) else lo
        hi = high if high is not None and (hi is None or high < hi) else hi
    empty = lo is not None and hi is not None and lo >= hi
    return (iso(lo) if lo else None), (iso(hi) if hi else None), empty


def _count(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit() or not 1 <= int(value) <= 10_000:
        raise bad("_count", f"_count must be a whole number from 1 to {MAX_COUNT}.")
    return min(int(value), MAX_COUNT)


def _cursor(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError, binascii.Error):
        decoded = ""
    if not keys.LEDGER_TIME_RE.match(decoded):
        raise bad("_cursor", "_cursor is not valid.")
    return decoded


def encode_cursor(before: str) -> str:
    return base64.urlsafe_b64encode(before.encode()).decode().rstrip("=")


def parse(params: dict[str, list[str]]) -> LedgerQuery:
    unknown = sorted(set(params) - set(SUPPORTED))
    if unknown:
        raise bad(unknown[0], f"Supported parameters: {', '.join(SUPPORTED)}.", "not-supported")
    patient = _id(params, "patient", "Patient/")
    agent = _id(params, "agent", "Practitioner/")
    lo, hi, empty = _dates(params.get("date") or [])
    if patient is None and agent is None and lo is None and hi is None:
        raise Invalid(Issue("required", "Give patient, agent or date.", [SEARCH]))
    window = Window(lo, hi, _cursor(_one(params, "_cursor")))
    return LedgerQuery(patient, agent, window, _count(_one(params, "_count")), empty)


@dataclass(frozen=True)
class Found:
    events: list[dict[str, Any]]
    cursor: str | None  # for the next page's `_cursor`


def search(tenant: str, audit: AuditDraft, query: LedgerQuery) -> Found:
    """One Query: the page's entries as AuditEvents, newest first."""
    audit.resource_type = "AuditEvent"
    audit.patient_id = query.patient  # a look at a patient's trail is in that trail
    if query.empty:
        audit.result_count = 0
        return Found([], None)
    if query.patient is not None:
        page = index.by_patient(tenant, query.patient, query.window, query.count, query.agent)
    elif query.agent is not None:
        page = index.by_user(tenant, query.agent, query.window, query.count)
    else:
        page = index.by_time(tenant, query.window, query.count)
    audit.result_count = len(page.items)
    events = [audit_event(item.entry, item.hash) for item in page.items]
    return Found(events, encode_cursor(page.before) if page.before else None)


def verify_ledger(tenant: str, audit: AuditDraft, params: dict[str, list[str]]) -> Report:
    """`$verify`: the caller's tenant's whole chain; it takes no parameters."""
    if params:
        name = sorted(params)[0]
        raise bad(name, "$verify takes no parameters.", "not-supported", "audit.verify")
    audit.resource_type = "AuditEvent"
    return verify(tenant)
