"""What a search parameter reads from a resource: small FHIRPath-like extractors.

Each extractor returns plain values of its parameter's FHIR type:

* string    -> `str`
* token     -> `(system or None, code)`
* date      -> `DateRange` (every date, dateTime, instant and Period is a range)
* reference -> `"Type/id"`
* quantity  -> `(value, system or None, code or None)`

Dates and times without a time zone are read as UTC, in resources and in search
values alike (docs/search.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

Extract = Callable[[dict[str, Any]], list[Any]]

MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TINY = timedelta(microseconds=1)
_DAY = timedelta(days=1)

_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?P<f>\.[0-9]+)?)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)


@dataclass(frozen=True)
class DateRange:
    """[lo, hi): the instants a FHIR date value covers."""

    lo: datetime
    hi: datetime

    def single(self, days: int) -> bool:
        return self.hi - self.lo <= timedelta(days=days)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if year > 9999:
        return MAX_TIME
    return moment.replace(year=year, month=month + 1)


def date_range(text: str) -> DateRange | None:
    """The range of a FHIR date, dateTime or instant (None when it is not one).
    Its precision sets its width: `2026` is the whole year, `2026-11-26T10:00`
    one minute."""
    m = _DATE.match(text)
    if not m:
        return None
    g = m.groupdict()
    try:
        tz = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        year = int(g["y"])
        if year < 1:
            return None
        if g["m"] is None:
            lo = datetime(year, 1, 1, tzinfo=UTC)
            return DateRange(lo, _add_months(lo, 12))
        if g["d"] is None:
            lo = datetime(year, int(g["m"]), 1, tzinfo=UTC)
            return DateRange(lo, _add_months(lo, 1))
        if g["H"] is None:
            lo = datetime(year, int(g["m"]), int(g["d"]), tzinfo=UTC)
            return DateRange(lo, lo + timedelta(days=1) if lo < MAX_TIME - _DAY else MAX_TIME)
        second = int(g["S"] or 0)
        micro = int((g["f"] or ".0")[1:7].ljust(6, "0"))
        lo = datetime(
            year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), second, micro, tzinfo=tz
        ).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if g["f"]:
        width = timedelta(microseconds=1)
    elif g["S"] is not None:
        width = timedelta(seconds=1)
    else:
        width = timedelta(minutes=1)
    return DateRange(lo, lo + width)


def _walk(node: Any, path: Iterable[str]) -> list[Any]:
    """Every value at `path` (lists flattened at each step)."""
    current = [node]
    for step in path:
        nxt: list[Any] = []
        for value in current:
            if isinstance(value, dict) and step in value:
                child = value[step]
                nxt.extend(child if isinstance(child, list) else [child])
        current = nxt
    return current


def strings(*paths: str) -> Extract:
    """String values at each dotted path (e.g. "name.family", "name.given")."""
    split = [p.split(".") for p in paths]
    return lambda r: [v for p in split for v in _walk(r, p) if isinstance(v, str)]


def codes(path: str) -> Extract:
    """A `code` element: a token without a system."""
    split = path.split(".")
    return lambda r: [(None, v) for v in _walk(r, split) if isinstance(v, str)]


def _coding(c: Any) -> list[tuple[str | None, str]]:
    if isinstance(c, dict) and isinstance(c.get("code"), str):
        system = c.get("system")
        return [(system if isinstance(system, str) else None, c["code"])]
    return []


def codings(path: str) -> Extract:
    """A Coding or CodeableConcept element: one token per coding."""
    split = path.split(".")

    def extract(r: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for v in _walk(r, split):
            if isinstance(v, dict) and "coding" in v:
                for c in v.get("coding") or []:
                    found.extend(_coding(c))
            else:
                found.extend(_coding(v))
        return found

    return extract


def identifiers(path: str = "identifier") -> Extract:
    split = path.split(".")

    def extract(r: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for v in _walk(r, split):
            if isinstance(v, dict) and isinstance(v.get("value"), str) and v["value"].strip():
                system = v.get("system")
                found.append((system if isinstance(system, str) else None, v["value"].strip()))
        return found

    return extract


def dates(*paths: str) -> Extract:
    """date, dateTime, instant or Period elements (choice types: name each path,
    e.g. "effectiveDateTime", "effectivePeriod")."""
    split = [p.split(".") for p in paths]

    def extract(r: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for p in split:
            for v in _walk(r, p):
                if isinstance(v, str):
                    rng = date_range(v)
                    if rng is not None:
                        found.append(rng)
                elif isinstance(v, dict) and ("start" in v or "end" in v):
                    start = date_range(str(v.get("start") or ""))
                    end = date_range(str(v.get("end") or ""))
                    found.append(
                        DateRange(start.lo if start else MIN_TIME, end.hi if end else MAX_TIME)
                    )
        return found

    return extract


def references(path: str) -> Extract:
    split = path.split(".")

    def extract(r: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for v in _walk(r, split):
            if isinstance(v, dict) and isinstance(v.get("reference"), str):
                ref = normalize_reference(v["reference"])
                if ref:
                    found.append(ref)
        return found

    return extract


_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[0-9]+)?$")


def normalize_reference(text: str, default_type: str | None = None) -> str | None:
    """`Type/id`, from a relative or absolute reference (or a bare id when the
    parameter has one target type); None when it is neither."""
    m = _REF.search(text.strip())
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    if default_type and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", text.strip()):
        return f"{default_type}/{text.strip()}"
    return None


def quantities(path: str) -> Extract:
    split = path.split(".")

    def extract(r: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for v in _walk(r, split):
            if isinstance(v, dict) and isinstance(v.get("value"), int | float):
                try:
                    value = Decimal(str(v["value"]))
                except InvalidOperation:
                    continue
                system, code = v.get("system"), v.get("code") or v.get("unit")
                found.append((value, system if isinstance(system, str) else None, code))
        return found

    return extract


def last_updated(r: dict[str, Any]) -> list[Any]:
    rng = date_range(str((r.get("meta") or {}).get("lastUpdated") or ""))
    return [rng] if rng else []


def resource_id(r: dict[str, Any]) -> list[Any]:
    return [(None, r["id"])] if isinstance(r.get("id"), str) else []
