"""The chart and the whole record of a patient (docs/adr/0008-the-chart-in-one-query.md).

`chart`: one consistent Query of the patient's chart entries (`C#` to `C$`), whose
size is bounded whatever the length of the record; each entry is checked against
the policy table (its resource type and data class, read) and opened only when the
reader may see it. Sections a role may not see are named in `withheld`.

`everything`: the record itself, a page at a time (`R#`), psychotherapy notes and
every other variant stored apart left out by DynamoDB's filter; each resource is
checked and shown as the reader's role may see it (functions/common/authz.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.common.authz import Op, Permission, allowed, shown
from functions.common.caller import Caller
from functions.engine import registry, service
from functions.engine.registry import owner_key
from models import chart, keys, resources
from models.resources import Stored

SECTIONS = {
    "Condition": "problems",
    "MedicationRequest": "medications",
    "AllergyIntolerance": "allergies",
    "Flag": "flags",
    "CarePlan": "plans",
}
SCORES_KEPT = 12
NOTES_KEPT = 20


@dataclass
class Chart:
    patient: dict[str, Any] | None = None
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    withheld: set[str] = field(default_factory=set)
    bytes_read: int = 0

    def to_json(self) -> dict[str, Any]:
        notes = [n for _, n in sorted(self.notes, key=lambda x: -x[0])][:NOTES_KEPT]
        out: dict[str, Any] = {"patient": self.patient}
        for name in SECTIONS.values():
            out[name] = sorted(self.sections.get(name, []), key=lambda s: str(s.get("id")))
        out["scores"] = {k: {"recent": v[:SCORES_KEPT], "baseline": self.baselines.get(k)}
                         for k, v in sorted(self.scores.items())}  # fmt: skip
        out["notes"] = notes
        out["withheld"] = sorted(self.withheld)
        return out


def _may_read(caller: Caller, resource_type: str, data_class: str) -> bool:
    """The policy's read row for what a chart entry or a resource of the record is."""
    return allowed(caller.principal, Permission(summary_type(resource_type), data_class, Op.READ))


def _entry_type(entry: chart.SealedEntry) -> tuple[str, str]:
    """(resource type the entry summarises, section name) from its key alone, so that
    an entry the reader may not see is never opened."""
    section, _, rest = entry.key.partition("#")
    if section == "0":
        return registry.chart_owner().name, "patient"
    if section == "1":
        resource_type = rest.partition("#")[0]
        return resource_type, SECTIONS.get(resource_type, resource_type.lower())
    if section == "2":
        return "Observation", "scores"
    return "DocumentReference", "notes"


def _place(result: Chart, entry: chart.SealedEntry, name: str, summary: dict[str, Any]) -> None:
    if name == "patient":
        result.patient = summary
    elif name == "scores":
        instrument = entry.key.split("#")[1]
        if entry.key.endswith("#base"):
            result.baselines[instrument] = summary
        else:
            result.scores.setdefault(instrument, []).append(summary)
    elif name == "notes":
        result.notes.append((-len(result.notes), summary))  # packed newest first
    else:
        result.sections.setdefault(name, []).append(summary)


def _summaries(entry: chart.SealedEntry, name: str) -> list[dict[str, Any]]:
    """An entry's summaries: one, or the headers of the packed note section (newest
    first), each shown or hidden by the reader's role view on its own."""
    opened = entry.open()
    if name != "notes":
        return [opened]
    listed = opened.get("entries")
    return [h for h in listed if isinstance(h, dict)] if isinstance(listed, list) else []


def read_chart(caller: Caller, patient_id: str) -> chart.ChartRead:
    """The chart's entries, still sealed (its one Query); 404 when the patient has no
    chart: an unknown id, a deleted patient, or another organisation's."""
    owner = registry.chart_owner()
    if not keys.valid_id(patient_id):
        raise service.not_found(owner, patient_id)
    read = chart.read(caller.tenant, patient_id)
    if not any(e.key == owner_key(owner.name) for e in read.entries):
        raise service.not_found(owner, patient_id)
    return read


def chart_of(caller: Caller, patient_id: str) -> Chart:
    """The chart in one Query, each entry as the reader may see it."""
    caller.touched(registry.chart_owner().name, patient_id, patient_id)
    read = read_chart(caller, patient_id)
    result = Chart(bytes_read=read.bytes_read)
    for entry in read.entries:
        resource_type, name = _entry_type(entry)
        if not _may_read(caller, resource_type, entry.data_class):
            result.withheld.add(name)
            continue
        for summary in _summaries(entry, name):
            seen = shown(caller.principal, summary_type(resource_type), entry.data_class,
                         summary)  # fmt: skip
            if seen is not None:
                _place(result, entry, name, seen)
    for scores in result.scores.values():
        scores.sort(key=lambda s: str(s.get("date") or ""), reverse=True)
    return result


def summary_type(resource_type: str) -> str:
    decl = registry.get(resource_type)
    return decl.fhir_type if decl is not None else resource_type


# ----------------------------------------------------------------- $everything

EVERYTHING_MAX = 100


def _stored_apart() -> frozenset[str]:
    """Data classes of variants stored apart (psychotherapy notes): never in $everything."""
    return frozenset(d.data_class for d in registry.all_types() if d.variant is not None)


def _readable(caller: Caller) -> Callable[[Stored], Stored | None]:
    def view(stored: Stored) -> Stored | None:
        decl = registry.get(stored.address.resource_type)
        if decl is None or stored.resource is None:
            return None
        if not _may_read(caller, decl.name, decl.data_class):
            return None
        seen = shown(caller.principal, decl.fhir_type, decl.data_class, stored.resource)
        return None if seen is None else Stored(stored.address, stored.version,
                                                stored.last_updated, seen)  # fmt: skip

    return view


def everything(
    caller: Caller, patient_id: str, count: int, cursor: str | None
) -> tuple[list[Stored], str | None]:
    """One page of the whole record (one Query), as the reader may see it."""
    owner = registry.chart_owner()
    caller.touched(owner.name, patient_id, patient_id)
    a = service.address_of(caller.tenant, owner, patient_id)
    if a is None or (cursor is not None and not _valid_cursor(cursor)):
        raise service.not_found(owner, patient_id)
    if cursor is None:
        current = resources.read_current(a)
        if current is None or current.deleted:
            raise service.not_found(owner, patient_id)
    page, last = resources.walk_chart(caller.tenant, patient_id, min(count, EVERYTHING_MAX),
                                      cursor, _stored_apart())  # fmt: skip
    view = _readable(caller)
    found = [s for s in (view(x) for x in page) if s is not None]
    caller.returned(owner.name, len(found), [patient_id])
    return found, last


def _valid_cursor(cursor: str) -> bool:
    head, _, rest = cursor.partition("#")
    kind, _, rid = rest.partition("#")
    return head == keys.CURRENT and keys.TYPE_RE.match(kind) is not None and keys.valid_id(rid)
