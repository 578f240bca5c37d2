"""Export a time range of the ledger: a FHIR Bundle of AuditEvent, or CSV.

`GET /audit/$export?start=<date>&end=<date>[&_format=json|csv]`: the entries whose
event occurred from the start of `start` through the end of `end` (each a FHIR
date or dateTime, at any precision), oldest first, at most MAX_ENTRIES (narrow
the range for more). The CSV has a fixed header (`CSV_COLUMNS`); its cells are
ids, codes and times, and any cell that a spreadsheet would read as a formula is
prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from functions.audit.compliance import bad, bounds
from functions.audit.render import audit_event
from functions.common.audit import AuditDraft
from functions.common.errors import Invalid, Issue
from models import ledger_index as index
from models.clock import iso, now
from models.ledger import decode
from models.ledger_index import Window

WHERE = "audit.export"
MAX_ENTRIES = 5_000
FORMATS = {"json": "json", "application/fhir+json": "json", "csv": "csv", "text/csv": "csv"}
CSV_COLUMNS = (
    "seq", "recorded", "occurred_at", "event_id", "source", "detail_type", "actor", "action",
    "outcome", "patient_ids", "resource_type", "resource_id", "request_id", "prev", "hash",
)  # fmt: skip
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportQuery:
    lo: str
    hi: str
    fmt: str  # "json" | "csv"


@dataclass(frozen=True)
class Exported:
    body: str
    content_type: str
    filename: str


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise bad(name, f"{name} may be given once.", where=WHERE)
    return values[0] if values else None


def parse(params: dict[str, list[str]]) -> ExportQuery:
    unknown = sorted(set(params) - {"start", "end", "_format"})
    if unknown:
        raise bad(unknown[0], "Supported parameters: start, end, _format.", "not-supported", WHERE)
    start, end = _single(params, "start"), _single(params, "end")
    if start is None or end is None:
        missing = "start" if start is None else "end"
        raise bad(missing, "start and end are required.", "required", WHERE)
    lo, _ = bounds(start, "start", WHERE)
    _, hi = bounds(end, "end", WHERE)
    if hi <= lo:
        raise bad("end", "end is before start.", where=WHERE)
    fmt = FORMATS.get((_single(params, "_format") or "json").lower())
    if fmt is None:
        raise bad("_format", "_format is json or csv.", where=WHERE)
    return ExportQuery(iso(lo), iso(hi), fmt)


def _cell(value: Any) -> str:
    text = "" if value is None else " ".join(value) if isinstance(value, list) else str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def _row(text: str, entry_hash: str) -> list[str]:
    body = decode(text)
    event = body["event"]
    detail = event.get("detail") or {}
    patients = [detail.get("patient_id"), *(detail.get("patient_ids") or [])]
    values = {
        **{k: detail.get(k) for k in ("actor", "action", "outcome", "resource_type")},
        **{k: detail.get(k) for k in ("resource_id", "request_id")},
        **{k: event.get(k) for k in ("event_id", "source", "detail_type", "occurred_at")},
        "seq": body["seq"], "recorded": body["recorded"], "prev": body["prev"],
        "hash": entry_hash, "patient_ids": list(dict.fromkeys(p for p in patients if p)),
    }  # fmt: skip
    return [_cell(values[column]) for column in CSV_COLUMNS]


def export(tenant: str, audit: AuditDraft, query: ExportQuery) -> Exported:
    audit.resource_type = "AuditEvent"
    items = list(index.in_order(tenant, Window(query.lo, query.hi), MAX_ENTRIES + 1))
    if len(items) > MAX_ENTRIES:
        raise Invalid(
            Issue(
                "too-costly",
                f"More than {MAX_ENTRIES} entries: narrow the range.",
                [f"{WHERE}.end"],
            )
        )
    audit.result_count = len(items)
    name = f"ledger-{tenant}-{query.lo[:10]}-{query.hi[:10]}"
    if query.fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_row(item.entry, item.hash) for item in items)
        return Exported(out.getvalue(), "text/csv; charset=utf-8", f"{name}.csv")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso(now()),
        "entry": [{"resource": audit_event(item.entry, item.hash)} for item in items],
    }
    text = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False)
    return Exported(text, "application/fhir+json; charset=utf-8", f"{name}.json")
