"""A tenant's settings: one item per tenant, `TENANT#<t>` / `SETTINGS`.

Settings are configuration, not PHI (a number of days, role names), so they are
stored in clear. Reading them is one consistent GetItem; writing them one PutItem
(the last writer wins: an administrator's form replaces the whole set).
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)

from models import keys
from models.items import TableItem

SETTINGS_SK = "SETTINGS"


class TenantSettingsItem(TableItem, discriminator="tenant-settings"):
    tenant = UnicodeAttribute()
    unsigned_note_days = NumberAttribute()
    psychotherapy_roles = UnicodeSetAttribute(null=True)  # DynamoDB stores no empty set
    alert_escalation_minutes = NumberAttribute(null=True)  # None: never set (the default)
    fee_schedule = JSONAttribute(null=True)  # {CPT code: cents}; None: no fees
    updated_at = UnicodeAttribute()
    updated_by = UnicodeAttribute()  # the administrator's subject (an id, not a name)


@dataclass(frozen=True)
class StoredSettings:
    unsigned_note_days: int
    psychotherapy_roles: frozenset[str]
    alert_escalation_minutes: int | None = None
    fee_schedule: dict[str, int] | None = None  # CPT code -> cents of USD


def read(tenant: str) -> StoredSettings | None:
    """The tenant's stored settings (None: never set), one consistent GetItem."""
    try:
        item = TenantSettingsItem.get(keys.tenant_pk(tenant), SETTINGS_SK, consistent_read=True)
    except TenantSettingsItem.DoesNotExist:
        return None
    return StoredSettings(
        unsigned_note_days=int(item.unsigned_note_days),
        psychotherapy_roles=frozenset(item.psychotherapy_roles or ()),
        alert_escalation_minutes=(
            None if item.alert_escalation_minutes is None else int(item.alert_escalation_minutes)
        ),
        fee_schedule={str(k): int(v) for k, v in (item.fee_schedule or {}).items()} or None,
    )


def write(tenant: str, settings: StoredSettings, updated_at: str, updated_by: str) -> None:
    """Replace the tenant's settings (one PutItem)."""
    TenantSettingsItem(
        keys.tenant_pk(tenant),
        SETTINGS_SK,
        tenant=tenant,
        unsigned_note_days=settings.unsigned_note_days,
        psychotherapy_roles=set(settings.psychotherapy_roles) or None,
        alert_escalation_minutes=settings.alert_escalation_minutes,
        fee_schedule=settings.fee_schedule,
        updated_at=updated_at,
        updated_by=updated_by,
    ).save()
