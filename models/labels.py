"""Security labels (FHIR `meta.security`) kept as a keyed MAC beside the chart.

Labels live in the encrypted body like every other field. Who may change them is
decided by the caller (functions/engine/labels.py); to let a write by anyone
else be conditioned on the labels staying what they are, without reading the
body first and without storing labels in clear, each resource has one small item:

    pk = <its collection>, sk = L#<Type>#<id>, mac = HMAC(tenant key, <Type>/<id> | labels)

The MAC names the resource, so two patients with the same labels have unrelated
MACs, and every resource gets the item (also with no labels), so neither equality
nor presence of labels can be read from the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import UnicodeAttribute

from models import blind_index, keys
from models.items import TableItem
from models.resources import Address
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


@dataclass(frozen=True)
class LabelKey:
    """Whose labels: any resource, beside it in its item collection."""

    address: Address

    @property
    def tenant(self) -> str:
        return self.address.tenant

    @property
    def resource_type(self) -> str:
        return self.address.resource_type

    @property
    def resource_id(self) -> str:
        return self.address.resource_id

    @property
    def pk(self) -> str:
        return self.address.pk

    @property
    def sk(self) -> str:
        return keys.labels_sk(self.resource_type, self.resource_id)


def mac(key: LabelKey, codings: list[dict[str, Any]] | None) -> str:
    secret = blind_index.tenant_key(key.tenant)
    text = f"{key.resource_type}/{key.resource_id}|{canonical(codings)}"
    return blind_index.token(secret, NAMESPACE, text)


def _item(key: LabelKey, value: str) -> LabelsItem:
    return LabelsItem(
        key.pk,
        key.sk,
        tenant=key.tenant,
        resource_type=key.resource_type,
        resource_id=key.resource_id,
        mac=value,
    )


def stage_set(uow: UnitOfWork, key: LabelKey, value: str) -> None:
    """Record the labels this write stores (by a caller who may change them)."""
    uow.put("labels", _item(key, value))


def stage_unchanged(uow: UnitOfWork, key: LabelKey, value: str) -> None:
    """Make the write fail (label `labels`) unless the stored labels are these."""
    uow.check("labels", LabelsItem, key.pk, key.sk, LabelsItem.mac == value)


def stage_kept(uow: UnitOfWork, key: LabelKey, value: str) -> None:
    """The stored labels, read from the body, are written again: the item must hold
    them already, or be missing (a resource stored before labels had this item)."""
    condition = LabelsItem.pk.does_not_exist() | (LabelsItem.mac == value)
    uow.put("labels", _item(key, value), condition)
