"""Patient search over blind-index tokens.

Indexed (each gets an entry item, so it can lead a Query): `name` prefixes of
every family and given word, `birthdate` at year, month and day precision,
`identifier` as `system|value` and as bare `value`. Also in each entry's token
set (so they can filter): `family` and `given` prefixes. Limits are documented
in models/README.md ("Search").
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from functions.common.errors import Invalid, Issue
from models.blind_index import MAX_PREFIX, MIN_PREFIX, normalize_words, prefixes, token

SUPPORTED = ("family", "given", "name", "birthdate", "identifier", "_count", "_cursor")
IGNORED = ("_format", "_pretty")  # response shaping clients add; JSON is the only format
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
ENTRY_NAMESPACES = ("name", "birthdate", "identifier")
DATE_RE = re.compile(r"(?:eq)?([0-9]{4})(?:-([0-9]{2}))?(?:-([0-9]{2}))?")  # ASCII digits only
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits: str.isdigit() also takes "²" and "٣"
# 99: a page's audit record and its copy in each returned patient's trail are one
# transaction of at most 100 items (models/audit.py).
DEFAULT_COUNT, MAX_COUNT = 20, 99
MAX_ENTRIES = 90  # a write must fit one transaction (100 items) with its other items


def _name_terms(resource: dict[str, Any]) -> set[tuple[str, str]]:
    terms: set[tuple[str, str]] = set()
    for name in resource.get("name") or []:
        for field_name, values in (
            ("family", [name.get("family") or ""]),
            ("given", name.get("given") or []),
        ):
            for value in values:
                for word in normalize_words(str(value)):
                    for prefix in prefixes(word):
                        terms.add(("name", prefix))
                        terms.add((field_name, prefix))
    return terms


def _date_terms(resource: dict[str, Any]) -> set[tuple[str, str]]:
    date = str(resource.get("birthDate") or "")
    return {("birthdate", date[:n]) for n in (4, 7, 10) if len(date) >= n}


def _identifier_terms(resource: dict[str, Any]) -> set[tuple[str, str]]:
    terms = set()
    for ident in resource.get("identifier") or []:
        value = str(ident.get("value") or "").strip()
        if value:
            terms.add(("identifier", f"|{value}"))
            terms.add(("identifier", f"{ident.get('system') or ''}|{value}"))
    return terms


@dataclass(frozen=True)
class PatientTokens:
    entries: frozenset[str]  # tokens that get an entry item
    all: frozenset[str]  # every token, stored on each entry for filtering


def tokens_for(key: bytes, resource: dict[str, Any]) -> PatientTokens:
    terms = _name_terms(resource) | _date_terms(resource) | _identifier_terms(resource)
    entries = {token(key, ns, v) for ns, v in terms if ns in ENTRY_NAMESPACES}
    if len(entries) > MAX_ENTRIES:
        raise Invalid(
            Issue(
                "too-costly",
                f"Too many searchable values (more than {MAX_ENTRIES} "
                "name prefixes, dates and identifiers).",
                ["Patient.name"],
            )
        )
    return PatientTokens(frozenset(entries), frozenset(token(key, ns, v) for ns, v in terms))


@dataclass
class SearchQuery:
    terms: list[tuple[str, str, int]] = field(default_factory=list)  # (ns, value, rank)
    count: int = DEFAULT_COUNT
    cursor: str | None = None
    names: list[str] = field(default_factory=list)

    def primary_and_filters(self, key: bytes) -> tuple[str | None, list[str]]:
        """The most selective indexed term leads the Query; every other term
        (and the field of a family/given term) filters within it."""
        if not self.terms:
            return None, []
        leading = [("name" if ns in ("family", "given") else ns, v, r) for ns, v, r in self.terms]
        best = max(leading, key=lambda t: t[2])
        primary = token(key, best[0], best[1])
        filters = {token(key, ns, v) for ns, v, _ in self.terms} - {primary}
        return primary, sorted(filters)


def _bad(param: str, message: str) -> Invalid:
    return Invalid(Issue("invalid", message, [f"Patient.search.{param}"]))


def _string_terms(param: str, value: str) -> list[tuple[str, str, int]]:
    words = normalize_words(value)
    if not words:
        raise _bad(param, f"'{param}' needs letters or digits.")
    out = []
    for word in words:
        if len(word) < MIN_PREFIX:
            raise _bad(param, f"Each word of '{param}' needs at least {MIN_PREFIX} characters.")
        prefix = word[:MAX_PREFIX]
        out.append((param, prefix, 10 + len(prefix)))
    return out


def whole_number(value: str | None) -> int | None:
    """A non-negative whole number written with 1 to 9 ASCII digits, else None."""
    return int(value) if value is not None and WHOLE_NUMBER.fullmatch(value) else None


def _real_date(year: str, month: str | None, day: str | None) -> bool:
    """Year 0001-9999, month 01-12, a day that month has (2001-02-29 has none)."""
    try:
        datetime.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return True


def _date_term(value: str) -> tuple[str, str, int]:
    m = DATE_RE.fullmatch(value)
    if not m:
        raise _bad(
            "birthdate",
            "birthdate supports eq (or no prefix) with YYYY, YYYY-MM or "
            "YYYY-MM-DD; ranges are not supported.",
        )
    if not _real_date(*m.groups()):
        raise _bad("birthdate", "birthdate is not a calendar date (year 0001-9999).")
    date = value.removeprefix("eq")
    return ("birthdate", date, 40 if len(date) == 10 else 5)


def _identifier_term(value: str) -> tuple[str, str, int]:
    system, sep, code = value.rpartition("|")
    if not code.strip():
        raise _bad("identifier", "identifier needs a value: [system|]value.")
    return ("identifier", f"{system if sep else ''}|{code.strip()}", 100)


def parse_count(value: str, where: str = "Patient.search") -> int:
    """`_count` of a search or history page; `where` names the interaction in errors."""
    count = whole_number(value)
    if count is None or not 1 <= count <= MAX_COUNT:
        message = f"_count must be a whole number from 1 to {MAX_COUNT}."
        raise Invalid(Issue("invalid", message, [f"{where}._count"]))
    return count


def parse_before_version(value: str | None) -> int | None:
    """History's `_before_version` (from the server's own next links): a version number."""
    if value is None:
        return None
    version = whole_number(value)
    if version is None or version < 1:
        raise Invalid(
            Issue(
                "invalid",
                "_before_version must be a version number (1 to 9 digits).",
                ["Patient.history._before_version"],
            )
        )
    return version


def _check_param(name: str, values: list[str]) -> None:
    base, _, modifier = name.partition(":")
    if base == "_format" and any(v not in JSON_FORMATS for v in values):
        raise _bad(name, "Only JSON is served (_format=json).")
    if base not in SUPPORTED + IGNORED:
        raise _bad(name, f"Unsupported search parameter. Supported: {', '.join(SUPPORTED)}.")
    if modifier:
        raise _bad(name, "Search modifiers are not supported.")
    if base.startswith("_") and len(values) > 1:
        raise _bad(name, f"{base} may be given once.")
    if any("," in v for v in values):
        raise _bad(name, "Comma-separated alternatives (OR) are not supported.")


def parse_query(params: dict[str, list[str]]) -> SearchQuery:
    query = SearchQuery(names=sorted(params))
    for name, values in sorted(params.items()):
        _check_param(name, values)
        for value in values:
            if name == "_count":
                query.count = parse_count(value)
            elif name == "_cursor":
                query.cursor = value
            elif name in IGNORED:
                continue
            elif name == "birthdate":
                query.terms.append(_date_term(value))
            elif name == "identifier":
                query.terms.append(_identifier_term(value))
            else:
                query.terms.extend(_string_terms(name, value))
    return query
