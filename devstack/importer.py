"""Load FHIR bundles (Synthea transaction Bundles) into a tenant.

Each Patient entry is created through the same use case the API calls, with an
audit record naming the importer. A patient whose identifier is already known
in the tenant is skipped, so importing a folder twice adds nothing. Other
resource types are counted and skipped until their workflows exist.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.common.audit import AuditDraft
from functions.patients import service
from models.clock import new_id

IMPORT_ROLES = ["import"]


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped_types: Counter[str] = field(default_factory=Counter)
    files: int = 0


def _draft(tenant: str, action: str) -> AuditDraft:
    return AuditDraft(
        action=action,
        request_id=new_id(),
        route="import",
        source_ip=None,
        tenant=tenant,
        actor="system:import",
        actor_name="importer",
        roles=IMPORT_ROLES,
    )


def _patients(bundle: dict[str, Any], report: ImportReport) -> list[dict[str, Any]]:
    found = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient":
            found.append(resource)
        else:
            report.skipped_types[str(resource.get("resourceType"))] += 1
    return found


def _already_there(tenant: str, patient: dict[str, Any]) -> str | None:
    for ident in patient.get("identifier") or []:
        if ident.get("system") and ident.get("value"):
            key = f"{ident['system']}|{ident['value']}"
            page = service.search_patients(
                tenant, _draft(tenant, "patient.search"), {"identifier": [key], "_count": ["1"]}
            )
            if page.resources:
                return str(page.resources[0]["id"])
            return None
    return None


def import_patient(tenant: str, patient: dict[str, Any], report: ImportReport) -> None:
    existing = _already_there(tenant, patient)
    if existing:
        report.existing.append(existing)
        return
    body = {k: v for k, v in patient.items() if k not in ("id", "meta")}
    stored = service.create_patient(tenant, _draft(tenant, "patient.create"), body)
    report.created.append(stored.resource["id"])


def import_folder(folder: Path, tenant: str, limit: int | None = None) -> ImportReport:
    report = ImportReport()
    files = sorted(folder.glob("*.json"))[:limit]
    if not files:
        raise SystemExit(f"No *.json bundles in {folder}")
    for path in files:
        bundle = json.loads(path.read_text())
        report.files += 1
        for patient in _patients(bundle, report):
            import_patient(tenant, patient, report)
    return report
