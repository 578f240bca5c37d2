"""Security labels (FHIR `meta.security`) kept as a keyed MAC beside the chart.

Labels live in the encrypted body like every other field. Who may change them is
decided by the caller (functions/patients/labels.py); to let a write by anyone
else be conditioned on the labels staying what they are, without reading the
body first and without storing labels in clear, each Patient has one small item:

    pk = TENANT#t#PATIENT#p, sk = L#Patient#p, mac = HMAC(tenant key, p | labels)

The MAC names the patient, so two patients with the same labels have unrelated
MACs, and every Patient gets the item (also with no labels), so neither equality
nor presence of labels can be read from the table.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import UnicodeAttribute

from models import blind_index, keys
from models.items import TableItem
from models.uow import UnitOfWork

NAMESPACE = "security-labels"


class LabelsItem(TableItem, discriminator="labels"):
    tenant = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    mac = UnicodeAttribute()


def canonical(codings: list[dict[str, Any]] | None) -> str:
    """One string per label set: order and duplicates do not matter."""
    unique = {json.dumps(c, sort_keys=True, separators=(",", ":")) for c in codings or []}
    return json.dumps(sorted(unique), separators=(",", ":"))


def mac(tenant: str, patient_id: str, codings: list[dict[str, Any]] | None) -> str:
    key = blind_index.tenant_key(tenant)
    return blind_index.token(key, NAMESPACE, f"Patient/{patient_id}|{canonical(codings)}")


def _item(tenant: str, patient_id: str, value: str) -> LabelsItem:
    return LabelsItem(
        keys.patient_pk(tenant, patient_id),
        keys.labels_sk("Patient", patient_id),
        tenant=tenant,
        resource_type="Patient",
        resource_id=patient_id,
        mac=value,
    )


def stage_set(uow: UnitOfWork, tenant: str, patient_id: str, value: str) -> None:
    """Record the labels this write stores (by a caller who may change them)."""
    uow.put("labels", _item(tenant, patient_id, value))


def stage_unchanged(uow: UnitOfWork, tenant: str, patient_id: str, value: str) -> None:
    """Make the write fail (label `labels`) unless the stored labels are these."""
    pk, sk = keys.patient_pk(tenant, patient_id), keys.labels_sk("Patient", patient_id)
    uow.check("labels", LabelsItem, pk, sk, LabelsItem.mac == value)


def stage_kept(uow: UnitOfWork, tenant: str, patient_id: str, value: str) -> None:
    """The stored labels, read from the body, are written again: the item must hold
    them already, or be missing (a Patient stored before labels had this item)."""
    condition = LabelsItem.pk.does_not_exist() | (LabelsItem.mac == value)
    uow.put("labels", _item(tenant, patient_id, value), condition)
