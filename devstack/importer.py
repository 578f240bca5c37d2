"""Load FHIR bundles (Synthea transaction Bundles) into a tenant.

Every resource of a type the server serves is created through the same use case
the API calls (functions/engine/service.py), audited under the importer's own
actor. References between the bundle's entries (`urn:uuid:...`) are rewritten to
the new ids; a reference to something not loaded (an Organization, a Claim) is
removed from the resource, keeping its display text, and counted in the report.
A resource the server refuses is reported with the reason, never dropped
silently. MedicationRequests come in as reported records (`reportedBoolean`):
a history from elsewhere, not prescriptions of the clinic's prescribers. A
bundle whose Patient is already known in the tenant (same identifier) is skipped
whole, so importing a folder twice adds nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.common.caller import Caller, system_caller
from functions.common.errors import ApiError
from functions.engine import registry, service
from models.clock import new_id

# Order matters: what others reference first.
LOADED = (
    "Patient",
    "Practitioner",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "Observation",
    "MedicationRequest",
)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # Patient ids
    existing: list[str] = field(default_factory=list)
    loaded: Counter[str] = field(default_factory=Counter)  # resources created, by type
    reused: Counter[str] = field(default_factory=Counter)  # Practitioners already there
    skipped_types: Counter[str] = field(default_factory=Counter)  # types not served
    refused: list[str] = field(default_factory=list)  # "<Type> <bundle id>: reason"
    dropped_references: Counter[str] = field(default_factory=Counter)  # "<Type>.<elem> -> T"
    files: int = 0

    def summary(self) -> str:
        return (
            f"{self.files} bundles: {len(self.created)} patients created, "
            f"{len(self.existing)} already there; loaded {dict(self.loaded)}; "
            f"not served (skipped): {dict(self.skipped_types)}; refused: {len(self.refused)}; "
            f"references to resources not loaded (removed): {sum(self.dropped_references.values())}"
        )


def _caller(tenant: str, action: str) -> Caller:
    return system_caller(tenant, "system:import", "importer", new_id(), action)


_DROP = object()  # a reference to something not loaded: the element is left out


def _rewrite(node: Any, ids: dict[str, str], where: str, report: ImportReport) -> Any:
    """`node` with bundle-local references replaced by `Type/newid`; a Reference
    to something not loaded becomes its display text alone, or is left out."""
    if isinstance(node, list):
        kept = [_rewrite(x, ids, where, report) for x in node]
        return [x for x in kept if x is not _DROP] or _DROP
    if not isinstance(node, dict):
        return node
    ref = node.get("reference")
    if isinstance(ref, str):
        target = ids.get(ref) or ids.get(ref.removeprefix("urn:uuid:"))
        if target:
            return {**node, "reference": target}
        report.dropped_references[where] += 1
        rest = {k: v for k, v in node.items() if k != "reference"}
        return rest if "display" in rest else _DROP
    out = {}
    for key, value in node.items():
        child = _rewrite(value, ids, f"{where}.{key}", report)
        if child is not _DROP:
            out[key] = child
    return out


def _patient_identifier(patient: dict[str, Any]) -> str | None:
    for ident in patient.get("identifier") or []:
        if ident.get("system") and ident.get("value"):
            return f"{ident['system']}|{ident['value']}"
    return None


def existing_id(tenant: str, type_name: str, identifier: str) -> str | None:
    """The id of the resource of that type holding this identifier (the system's own
    lookup, `service.find`: it audits nothing, as it touches no record's content)."""
    criteria = {"identifier": [identifier], "_count": ["1"]}
    found = service.find(tenant, registry.require(type_name), criteria).found
    return found[0].address.resource_id if found else None


def _create(tenant: str, resource: dict[str, Any]) -> str:
    decl = registry.require(str(resource["resourceType"]))
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    done = service.create(_caller(tenant, f"{decl.name.lower()}.create"), decl, body, True)
    return done.stored.address.resource_id


def import_bundle(
    tenant: str, bundle: dict[str, Any], report: ImportReport, types: tuple[str, ...] = LOADED
) -> None:
    entries = [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for entry in entries:
        resource = entry["resource"]
        kind = str(resource.get("resourceType"))
        if kind not in types:
            report.skipped_types[kind] += 1
            continue
        local = str(entry.get("fullUrl") or resource.get("id"))
        by_type.setdefault(kind, []).append((local, resource))
    patients = by_type.get("Patient", [])
    if len(patients) != 1:
        report.refused.append(f"bundle: {len(patients)} Patient entries (need exactly one)")
        return
    ident = _patient_identifier(patients[0][1])
    known = existing_id(tenant, "Patient", ident) if ident else None
    if known:
        report.existing.append(known)
        return
    ids: dict[str, str] = {}
    for kind in LOADED:
        for local, resource in by_type.get(kind, []):
            _load_one(tenant, kind, local, resource, ids, report)


def _load_one(
    tenant: str,
    kind: str,
    local: str,
    resource: dict[str, Any],
    ids: dict[str, str],
    report: ImportReport,
) -> None:
    if kind == "Practitioner":
        ident = _patient_identifier(resource)
        known = existing_id(tenant, kind, ident) if ident else None
        if known:
            _remember(ids, local, resource, f"{kind}/{known}")
            report.reused[kind] += 1
            return
    body = _rewrite(resource, ids, kind, report)
    if kind == "MedicationRequest":
        # the bundle's orders were written elsewhere: a medication history, reported
        # (R4 reportedBoolean), not prescriptions of this clinic's prescribers
        body = {**body, "reportedBoolean": True}
        body.pop("reportedReference", None)
    try:
        new = _create(tenant, body)
    except ApiError as err:
        where = ", ".join(x for i in err.issues for x in i.expression) or kind
        reason = "; ".join(i.diagnostics for i in err.issues)
        report.refused.append(f"{kind} {resource.get('id')}: {err.status} at {where}: {reason}")
        return
    _remember(ids, local, resource, f"{kind}/{new}")
    report.loaded[kind] += 1
    if kind == "Patient":
        report.created.append(new)


def _remember(ids: dict[str, str], local: str, resource: dict[str, Any], new: str) -> None:
    ids[local] = new
    if resource.get("id"):
        ids[f"{resource['resourceType']}/{resource['id']}"] = new
        ids[str(resource["id"])] = new


def import_folder(
    folder: Path, tenant: str, limit: int | None = None, types: tuple[str, ...] = LOADED
) -> ImportReport:
    """`types`: the resource types to load (the Patient always); others are counted
    as skipped."""
    unknown = set(types) - set(LOADED)
    if unknown:
        raise SystemExit(f"Cannot import {', '.join(sorted(unknown))}; types: {', '.join(LOADED)}")
    types = tuple(t for t in LOADED if t in types or t == "Patient")
    report = ImportReport()
    files = sorted(folder.glob("*.json"))[:limit]
    if not files:
        raise SystemExit(f"No *.json bundles in {folder}")
    for path in files:
        bundle = json.loads(path.read_text())
        report.files += 1
        import_bundle(tenant, bundle, report, types)
    return report
