"""FHIR R4 search over blind-index tokens, for every registered type.

Two halves that must agree, kept side by side:

* indexing (`index`): the keyed tokens a resource version gets; those of
  parameters declared `entry=True` also get a search entry, so they can lead a
  Query tenant-wide; every token is stored on each entry and on the current item
  so that further criteria filter server-side;
* querying (`parse`): a search string becomes criteria. One criterion leads the
  Query (the patient for a type in a chart, else the most selective entry token,
  else the tenant's list of the type), tokens filter in DynamoDB, and every
  criterion is then checked on the decrypted resource (`Query.matches`), so date
  prefixes, `:exact`, OR lists and `|code` mean exactly what R4 says.

What is refused with 400 (and listed in the CapabilityStatement): unknown
parameters, modifiers other than `:exact` on strings, chains, `_include`,
`_revinclude`, `_elements`, `_summary` other than `count`/`false`, the `ap` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from functions.common.errors import Invalid, Issue
from functions.engine import values as val
from functions.engine.registry import SPEC, ParamType, ResourceType, SearchParam
from models.blind_index import MAX_PREFIX, MIN_PREFIX, normalize_words, prefixes, token

DEFAULT_COUNT, MAX_COUNT = 20, 99  # a page's audit record and trail copies: one transaction
MAX_MATCH_SET = 2000  # resources read to sort or count a search (else 400 too-costly)
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits: str.isdigit() also takes "²"
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
XML_FORMATS = ("xml", "text/xml", "application/xml", "application/fhir+xml")
RESULT_PARAMS = (
    "_count",
    "_cursor",
    "_offset",
    "_sort",
    "_total",
    "_totalMethod",
    "_summary",
    "_format",
    "_pretty",
)
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
Term = tuple[str, str]  # (namespace, value) -> a keyed token


def whole_number(value: str | None) -> int | None:
    """A non-negative whole number written with 1 to 9 ASCII digits, else None."""
    return int(value) if value is not None and WHOLE_NUMBER.fullmatch(value) else None


def bad(where: str, message: str) -> Invalid:
    return Invalid(Issue("invalid", message, [where]))


# ----------------------------------------------------------------- indexing


def _ns(decl: ResourceType, param: SearchParam, form: str = "") -> str:
    return f"{decl.name}.{param.name}{form}"


def _token_terms(ns: str, system: str | None, code: str) -> set[tuple[Term, bool]]:
    """(term, leads): `system|code` and `code` (any system) can lead; the
    no-system and system-only forms only filter."""
    terms = {((ns, f"{system}|{code}"), True)} if system else {((f"{ns}:nosys", code), False)}
    terms.add(((f"{ns}:code", code), True))
    if system:
        terms.add(((f"{ns}:system", system), False))
    return terms


def _date_terms(ns: str, rng: val.DateRange) -> set[Term]:
    """Year, month and day tokens of a value within one day (one day, month, year)."""
    if rng.lo.year != (rng.hi - val.TINY).year:
        return set()
    day = rng.lo.date().isoformat()
    terms = {(ns, day[:4])}
    if (rng.hi - val.TINY).strftime("%Y-%m") == day[:7]:
        terms.add((ns, day[:7]))
        if (rng.hi - val.TINY).date().isoformat() == day:
            terms.add((ns, day))
    return terms


def param_terms(decl: ResourceType, param: SearchParam, resource: dict[str, Any]) -> set[Term]:
    ns = _ns(decl, param)
    terms: set[Term] = set()
    for value in param.extract(resource):
        if param.type is ParamType.STRING:
            for word in normalize_words(value):
                terms.update((ns, p) for p in prefixes(word))
        elif param.type is ParamType.TOKEN:
            terms.update(t for t, _ in _token_terms(ns, *value))
        elif param.type is ParamType.DATE:
            terms.update(_date_terms(ns, value))
        elif param.type is ParamType.REFERENCE:
            terms.add((ns, value))
    return terms


def _entry_term(decl: ResourceType, term: Term) -> bool:
    ns = term[0].removeprefix(f"{decl.name}.")
    name, _, form = ns.partition(":")
    param = decl.param(name)
    return bool(param and param.entry and form in ("", "code"))


@dataclass(frozen=True)
class Tokens:
    entries: frozenset[str]  # tokens that get an entry item
    all: frozenset[str]  # every token, stored for filtering


def index(decl: ResourceType, key: bytes, resource: dict[str, Any]) -> Tokens:
    terms: set[Term] = set()
    for param in decl.params:
        if param.type is not ParamType.QUANTITY:
            terms |= param_terms(decl, param, resource)
    entries = {token(key, ns, v) for ns, v in terms if _entry_term(decl, (ns, v))}
    if len(entries) > decl.max_entries:
        raise Invalid(
            Issue(
                "too-costly",
                f"Too many searchable values (more than {decl.max_entries} name prefixes, "
                "dates, codes and identifiers).",
                [decl.name],
            )
        )
    return Tokens(frozenset(entries), frozenset(token(key, ns, v) for ns, v in terms))


# ----------------------------------------------------------------- querying


@dataclass
class Alternative:
    """One of a criterion's comma-separated values."""

    terms: list[Term]  # all must be present (AND); empty: not expressible as tokens
    leads: Term | None  # an entry term this value can lead a Query with
    rank: int
    test: Any  # callable(values) -> bool


@dataclass
class Criterion:
    name: str  # as written, e.g. "family:exact"
    param: SearchParam | None  # None for _id
    alternatives: list[Alternative]

    def matches(self, resource: dict[str, Any]) -> bool:
        values = val.resource_id(resource) if self.param is None else self.param.extract(resource)
        return any(a.test(values) for a in self.alternatives)


@dataclass
class Query:
    decl: ResourceType
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    cursor: str | None = None
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (name, descending)
    total: bool = False
    summary_count: bool = False
    names: list[str] = field(default_factory=list)
    chart: str | None = None  # the patient whose chart is Queried
    charts: list[str] | None = None  # several patients (`patient=a,b`): each chart is Queried
    ids: list[str] | None = None  # `_id`: read these directly

    def matches(self, resource: dict[str, Any]) -> bool:
        return all(c.matches(resource) for c in self.criteria)

    def leading_term(self) -> Term | None:
        best: tuple[int, Term] | None = None
        for c in self.criteria:
            if len(c.alternatives) != 1:
                continue
            alt = c.alternatives[0]
            if alt.leads is not None and (best is None or alt.rank > best[0]):
                best = (alt.rank, alt.leads)
        return best[1] if best else None

    def filter_groups(self, key: bytes, leading: Term | None) -> list[list[str]]:
        """Token filters DynamoDB applies (AND of ORs); the rest is checked in memory."""
        groups: list[list[str]] = []
        for c in self.criteria:
            if len(c.alternatives) == 1:
                groups.extend([token(key, *t)] for t in c.alternatives[0].terms if t != leading)
            elif all(len(a.terms) == 1 for a in c.alternatives):
                groups.append(sorted({token(key, *a.terms[0]) for a in c.alternatives}))
        return groups

    @property
    def needs_match_set(self) -> bool:
        """Sorting, counting and several charts read every match (at most MAX_MATCH_SET)."""
        return (
            bool(self.sort)
            or self.total
            or self.summary_count
            or self.count == 0
            or self.charts is not None
        )


def _string_alternative(
    decl: ResourceType, param: SearchParam, name: str, value: str, exact: bool
) -> Alternative:
    where = f"{decl.name}.search.{name}"
    if exact:
        words = [w[:MAX_PREFIX] for w in normalize_words(value) if len(w) >= MIN_PREFIX]
        terms = [(_ns(decl, param), w) for w in words[:1]]
        lead_param = param if param.entry else decl.param(param.via) if param.via else None
        lead = (_ns(decl, lead_param), words[0]) if words and lead_param else None
        return Alternative(terms, lead, 30, lambda vs: value in vs)
    words = normalize_words(value)
    if not words:
        raise bad(where, f"'{name}' needs letters or digits.")
    for word in words:
        if len(word) < MIN_PREFIX:
            raise bad(where, f"Each word of '{name}' needs at least {MIN_PREFIX} characters.")
    wanted = [w[:MAX_PREFIX] for w in words]
    terms = [(_ns(decl, param), w) for w in wanted]
    longest = max(terms, key=lambda t: len(t[1]))
    via = decl.param(param.via) if param.via else None
    if via is not None and via.entry and not param.entry:
        lead = (_ns(decl, via), longest[1])
        return Alternative(terms, lead, 10 + len(lead[1]), _words_test(wanted))
    return Alternative(terms, longest if param.entry else None, 10 + len(longest[1]),
                       _words_test(wanted))  # fmt: skip


def _words_test(wanted: list[str]) -> Any:

    def test(values: list[Any]) -> bool:
        have = {w[:MAX_PREFIX] for v in values for w in normalize_words(v)}
        return all(any(h.startswith(w) for h in have) for w in wanted)

    return test


def _token_alternative(
    decl: ResourceType, param: SearchParam, name: str, value: str
) -> Alternative:
    where = f"{decl.name}.search.{name}"
    ns = _ns(decl, param)
    system, sep, code = value.rpartition("|") if "|" in value else ("", "", value)
    if sep and not code and not system:
        raise bad(where, f"{name} needs a code: [system]|[code].")
    if not sep:  # any system
        term: Term = (f"{ns}:code", code)

        def test(vs: list[Any]) -> bool:
            return any(c == code for _, c in vs)
    elif not system:  # explicitly no system
        term = (f"{ns}:nosys", code)

        def test(vs: list[Any]) -> bool:
            return any(s is None and c == code for s, c in vs)
    elif not code:  # any code of the system
        term = (f"{ns}:system", system)

        def test(vs: list[Any]) -> bool:
            return any(s == system for s, _ in vs)
    else:
        term = (ns, f"{system}|{code}")

        def test(vs: list[Any]) -> bool:
            return any(s == system and c == code for s, c in vs)

    leads = term if param.entry and term[0] in (ns, f"{ns}:code") else None
    if term[0] == f"{ns}:nosys" and param.entry:
        # no entry of its own: lead with the code (any system), filter on no-system
        return Alternative([term], (f"{ns}:code", code), 90, test)
    return Alternative([term], leads, 100 if system else 60, test)


def _split_prefix(value: str) -> tuple[str, str]:
    if value[:2] == "ap" or (value[:2] in PREFIXES and len(value) > 2):
        return value[:2], value[2:]
    return "eq", value


def date_test(prefix: str, s: val.DateRange) -> Any:
    def eq(t: val.DateRange) -> bool:
        return s.lo <= t.lo and t.hi <= s.hi

    def one(t: val.DateRange) -> bool:
        if prefix == "eq":
            return eq(t)
        if prefix == "ne":
            return not eq(t)
        if prefix == "gt":
            return t.hi > s.hi
        if prefix == "lt":
            return t.lo < s.lo
        if prefix == "ge":
            return t.hi > s.hi or eq(t)
        if prefix == "le":
            return t.lo < s.lo or eq(t)
        if prefix == "sa":
            return t.lo >= s.hi
        return t.hi <= s.lo  # eb

    return lambda vs: any(one(t) for t in vs)


def _date_alternative(decl: ResourceType, param: SearchParam, name: str, value: str) -> Alternative:
    where = f"{decl.name}.search.{name}"
    prefix, text = _split_prefix(value)
    if prefix == "ap":
        raise bad(where, "The 'ap' (approximately) prefix is not supported.")
    rng = val.date_range(text)
    if rng is None:
        raise bad(
            where,
            f"{name} must be [prefix]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]], a real date; "
            f"prefixes: {' '.join(PREFIXES)}.",
        )
    terms: list[Term] = []
    leads = None
    if prefix == "eq" and "T" not in text:
        terms = [(_ns(decl, param), text)]
        leads = terms[0] if param.entry else None
    return Alternative(terms, leads, 40 if len(text) == 10 else 5, date_test(prefix, rng))


def _reference_alternative(
    decl: ResourceType, param: SearchParam, name: str, value: str
) -> Alternative:
    where = f"{decl.name}.search.{name}"
    default = param.targets[0] if len(param.targets) == 1 else None
    ref = val.normalize_reference(value, default)
    if ref is None or (param.targets and ref.partition("/")[0] not in param.targets):
        targets = ", ".join(param.targets) or "a resource"
        raise bad(where, f"{name} must reference {targets}: [Type/]id or a URL.")
    term = (_ns(decl, param), ref)
    return Alternative([term], term if param.entry else None, 80, lambda vs: ref in vs)


def _quantity_alternative(
    decl: ResourceType, param: SearchParam, name: str, value: str
) -> Alternative:
    where = f"{decl.name}.search.{name}"
    prefix, text = _split_prefix(value)
    number, _, rest = text.partition("|")
    system, _, code = rest.partition("|")
    try:
        wanted = Decimal(number)
    except InvalidOperation:
        wanted = None
    if prefix in ("ap", "sa", "eb") or wanted is None or not wanted.is_finite():
        raise bad(where, f"{name} must be [eq|ne|gt|lt|ge|le]number[|system|code].")
    ops = {
        "eq": lambda a: a == wanted,
        "ne": lambda a: a != wanted,
        "gt": lambda a: a > wanted,
        "lt": lambda a: a < wanted,
        "ge": lambda a: a >= wanted,
        "le": lambda a: a <= wanted,
    }
    op = ops[prefix]

    def test(vs: list[Any]) -> bool:
        return any(
            op(v) and (not system or s == system) and (not code or c == code) for v, s, c in vs
        )

    return Alternative([], None, 0, test)


def _alternatives(
    decl: ResourceType, param: SearchParam, name: str, modifier: str, raw: str
) -> list[Alternative]:
    where = f"{decl.name}.search.{name}"
    if modifier and not (modifier == "exact" and param.type is ParamType.STRING):
        raise bad(where, f"The modifier ':{modifier}' is not supported on {param.name}.")
    out = []
    for value in _split_or(raw):
        if not value:
            raise bad(where, f"{name} has an empty value.")
        if param.type is ParamType.STRING:
            out.append(_string_alternative(decl, param, name, value, modifier == "exact"))
        elif param.type is ParamType.TOKEN:
            out.append(_token_alternative(decl, param, name, value))
        elif param.type is ParamType.DATE:
            out.append(_date_alternative(decl, param, name, value))
        elif param.type is ParamType.REFERENCE:
            out.append(_reference_alternative(decl, param, name, value))
        else:
            out.append(_quantity_alternative(decl, param, name, value))
    return out


def _split_or(raw: str) -> list[str]:
    """Comma-separated alternatives; `\\,` is a literal comma (R4 3.1.1.5.7)."""
    parts, current, escaped = [], "", False
    for ch in raw:
        if escaped:
            current += ch if ch in ",|$\\" else "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current + ("\\" if escaped else ""))
    return parts


ID_PARAM = SearchParam("_id", ParamType.TOKEN, val.resource_id, f"{SPEC}Resource-id")
LAST_UPDATED = SearchParam(
    "_lastUpdated",
    ParamType.DATE,
    val.last_updated,
    f"{SPEC}Resource-lastUpdated",
    sortable=True,
)


def parse_count(value: str, where: str) -> int:
    """`_count`: 0 asks for the total only; above the maximum it is capped."""
    count = whole_number(value)
    if count is None:
        raise bad(f"{where}._count", f"_count must be a whole number (0 to {MAX_COUNT}).")
    return min(count, MAX_COUNT)


def _set_offset(query: Query, value: str) -> None:
    offset = whole_number(value)
    if offset is None:
        raise bad(f"{query.decl.name}.search._offset", "_offset is not valid.")
    query.offset = offset


def _set_total(query: Query, value: str, name: str = "_total") -> None:
    if value not in ("none", "estimate", "accurate", "count"):
        raise bad(f"{query.decl.name}.search.{name}", f"{name} must be none, estimate, accurate "
                  "or count.")  # fmt: skip
    query.total = value != "none"


def _set_summary(query: Query, value: str) -> None:
    if value not in ("count", "false"):
        raise bad(f"{query.decl.name}.search._summary", "_summary supports count and false only.")
    query.summary_count = value == "count"


def _set_format(query: Query, value: str) -> None:
    if value not in JSON_FORMATS:
        raise bad(f"{query.decl.name}.search._format", "Only JSON is served (_format=json).")


def _result_param(query: Query, name: str, value: str) -> None:
    setters: dict[str, Any] = {
        "_count": lambda: setattr(query, "count", parse_count(value, f"{query.decl.name}.search")),
        "_cursor": lambda: setattr(query, "cursor", value),
        "_offset": lambda: _set_offset(query, value),
        "_total": lambda: _set_total(query, value),
        "_totalMethod": lambda: _set_total(query, value, "_totalMethod"),
        "_summary": lambda: _set_summary(query, value),
        "_sort": lambda: setattr(query, "sort", _parse_sort(query.decl, value)),
        "_format": lambda: _set_format(query, value),
    }
    setter = setters.get(name)
    if setter is not None:  # _pretty: accepted, ignored
        setter()


def _parse_sort(decl: ResourceType, value: str) -> list[tuple[str, bool]]:
    keys = []
    for part in value.split(","):
        descending = part.startswith("-")
        name = part.removeprefix("-")
        param = LAST_UPDATED if name == "_lastUpdated" else decl.param(name)
        if param is None or not param.sortable:
            allowed = ["_lastUpdated"] + [p.name for p in decl.params if p.sortable]
            raise bad(
                f"{decl.name}.search._sort", f"_sort supports {', '.join(allowed)} (or -name)."
            )
        keys.append((name, descending))
    return keys


def parse(decl: ResourceType, params: dict[str, list[str]]) -> Query:
    query = Query(decl, names=sorted(params))
    for name, values in sorted(params.items()):
        base, _, modifier = name.partition(":")
        where = f"{decl.name}.search.{name}"
        if base in RESULT_PARAMS:
            if modifier or len(values) > 1:
                raise bad(where, f"{base} may be given once, without a modifier.")
            _result_param(query, base, values[0])
            continue
        if "." in base:
            raise bad(where, "Chained parameters are not supported.")
        param = {"_id": ID_PARAM, "_lastUpdated": LAST_UPDATED}.get(base) or decl.param(base)
        if param is None:
            supported = ", ".join(["_id", "_lastUpdated"] + [p.name for p in decl.params])
            raise bad(where, f"Unsupported search parameter. Supported: {supported}.")
        for raw in values:
            if param is ID_PARAM:
                _add_ids(query, name, modifier, raw)
            else:
                _add_criterion(query, param, name, modifier, raw)
    return query


def _add_ids(query: Query, name: str, modifier: str, raw: str) -> None:
    ids = _split_or(raw)
    if modifier or any(not i for i in ids):
        raise bad(f"{query.decl.name}.search.{name}", "_id takes ids, comma-separated.")
    query.criteria.append(Criterion(name, None, [_id_alternative(i) for i in ids]))
    query.ids = ids if query.ids is None else [i for i in query.ids if i in ids]


def _add_criterion(query: Query, param: SearchParam, name: str, modifier: str, raw: str) -> None:
    alternatives = _alternatives(query.decl, param, name, modifier, raw)
    query.criteria.append(Criterion(name, param, alternatives))
    charts = charts_named(query.decl, param.name, raw)
    if charts is not None and len(charts) == 1:
        query.chart, query.charts = charts[0], None
    elif charts is not None and query.chart is None:
        query.charts = charts


def _id_alternative(wanted: str) -> Alternative:
    return Alternative([], None, 0, lambda vs: any(c == wanted for _, c in vs))


MAX_CHARTS = 10  # `patient=a,b,...`: one Query per chart, up to this many


def charts_named(decl: ResourceType, param_name: str, raw: str) -> list[str] | None:
    """The patients a compartment parameter's value names (one chart Query each), or
    None when it names none or more than MAX_CHARTS (the criterion then filters)."""
    if decl.compartment is None or param_name not in decl.compartment.params:
        return None
    found = []
    for value in _split_or(raw):
        patient_id = decl.compartment.patient_in(value, bare_id=True)
        if patient_id is None:
            return None
        found.append(patient_id)
    unique = list(dict.fromkeys(found))
    return unique if 0 < len(unique) <= MAX_CHARTS else None


# ----------------------------------------------------------------- sorting


def sort_key(query: Query, resource: dict[str, Any]) -> tuple[Any, ...]:
    key: list[Any] = []
    for name, descending in query.sort:
        param = LAST_UPDATED if name == "_lastUpdated" else query.decl.param(name)
        assert param is not None
        ranges = [r for r in param.extract(resource) if isinstance(r, val.DateRange)]
        if not ranges:
            key.append((1, 0.0))  # missing values last, whichever the direction
            continue
        moment: datetime = max(r.hi for r in ranges) if descending else min(r.lo for r in ranges)
        seconds = moment.timestamp()
        key.append((0, -seconds if descending else seconds))
    return tuple(key)
