"""Who may change a resource's security labels (`meta.security`).

Labels can reveal what a record holds (a substance-use program, psychotherapy),
so changing them is its own permission (`<type>.label`, functions/common/authz.py).
A write by anyone else keeps the stored labels: what they submit in
`meta.security` is ignored. A create by them stores no labels.

Cost: an update is still one transaction. It carries a condition that the stored
labels (as a keyed MAC, models/labels.py) equal the submitted ones, which holds
whenever a client sends back what it read. Only when it does not hold is the
current item read (one GetItem) and the write sent again with the stored labels.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from models import labels as label_store
from models.labels import LabelKey
from models.resources import Address
from models.uow import UnitOfWork


class LabelWrite(StrEnum):
    SET = "set"  # the caller may change labels: store what was submitted
    UNCHANGED = "unchanged"  # fail the write unless the submitted labels are the stored ones
    KEPT = "kept"  # the stored labels, read from the current body, are written again


def of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    security = (resource.get("meta") or {}).get("security") or []
    return list(security)


def with_labels(resource: dict[str, Any], codings: list[dict[str, Any]]) -> dict[str, Any]:
    """`resource` with exactly these labels (no `meta.security` when there are none)."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k != "security"}
    if codings:
        meta["security"] = codings
    out = {k: v for k, v in resource.items() if k != "meta"}
    return {**out, "meta": meta} if meta else out


def stage(uow: UnitOfWork, address: Address, resource: dict[str, Any], how: LabelWrite) -> None:
    key = LabelKey(address)
    value = label_store.mac(key, of(resource))
    if how is LabelWrite.SET:
        label_store.stage_set(uow, key, value)
    elif how is LabelWrite.UNCHANGED:
        label_store.stage_unchanged(uow, key, value)
    else:
        label_store.stage_kept(uow, key, value)
