"""Storage of the notes workflow: a tenant's own note templates, and the one read
that signing needs (the note and its chart's note-ring counter together).

Templates are tenant items (`TENANT#<t>`, `NOTE-TEMPLATE#<key>`): a title and
headings with prompts, no PHI, so they are stored in clear as JSON. Keys are
built here from `models.keys` helpers (the tenant partition) plus one small
helper for the sort key.

| access pattern | key condition | round trips |
|---|---|---|
| a tenant's templates | Query `pk = TENANT#t`, `begins_with(sk, NOTE-TEMPLATE#)` | 1 |
| one template | GetItem | 1 |
| save / delete one | PutItem / conditional DeleteItem | 1 |
| a note and its ring counter | BatchGetItem (2 keys, consistent) | 1 |
"""

from __future__ import annotations

import json
import re
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DeleteError

from models import keys
from models.chart import EMPTY, PackRead, open_pack
from models.items import ChartEntryItem, ResourceItem, TableItem
from models.resources import Address, Stored, open_body

TEMPLATE = "NOTE-TEMPLATE"
TEMPLATE_KEY_RE = re.compile(r"^[a-z0-9-]{2,40}$")
MAX_TEMPLATES = 200  # a tenant's own templates listed in one page


def template_sk(key: str) -> str:
    """`NOTE-TEMPLATE#<key>`: the key is checked first, so it never shapes another key."""
    if not TEMPLATE_KEY_RE.match(key):
        raise keys.KeyError_("template key")
    return f"{TEMPLATE}#{key}"


class NoteTemplateItem(TableItem, discriminator="note-template"):
    """One of a tenant's own note templates: the JSON form of functions/notes/templates.py."""

    tenant = UnicodeAttribute()
    key = UnicodeAttribute()
    data = UnicodeAttribute()  # JSON: key, title, sections (no PHI)
    updated_at = UnicodeAttribute()
    updated_by = UnicodeAttribute()  # the actor (token subject)


def _data(item: NoteTemplateItem) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(item.data)
    return data


def list_templates(tenant: str) -> list[dict[str, Any]]:
    """The tenant's own templates (JSON form), by key: one Query."""
    found = NoteTemplateItem.query(
        keys.tenant_pk(tenant),
        NoteTemplateItem.sk.startswith(f"{TEMPLATE}#"),
        consistent_read=True,
        limit=MAX_TEMPLATES,
    )
    return [_data(item) for item in found if isinstance(item, NoteTemplateItem)]


def get_template(tenant: str, key: str) -> dict[str, Any] | None:
    """One template of the tenant (None when it has none of that key)."""
    try:
        item = NoteTemplateItem.get(keys.tenant_pk(tenant), template_sk(key), consistent_read=True)
    except NoteTemplateItem.DoesNotExist:
        return None
    return _data(item)


def put_template(tenant: str, key: str, data: dict[str, Any], at: str, actor: str) -> None:
    """Create or replace the template of this key (one PutItem)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    NoteTemplateItem(keys.tenant_pk(tenant), template_sk(key), tenant=tenant, key=key,
                     data=text, updated_at=at, updated_by=actor).save()  # fmt: skip


def delete_template(tenant: str, key: str) -> bool:
    """Delete the template of this key; False when there was none (one DeleteItem)."""
    item = NoteTemplateItem(keys.tenant_pk(tenant), template_sk(key))
    try:
        item.delete(condition=NoteTemplateItem.pk.exists())
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


def read_with_pack(address: Address, pack_pk: str, pack_sk: str) -> tuple[Stored | None, PackRead]:
    """The current version of a resource (a tombstone's `resource` is None) and a
    packed chart section (empty when never written), in one consistent BatchGetItem:
    what signing a note reads (docs/adr/0008)."""
    wanted = [(address.pk, address.sk), (pack_pk, pack_sk)]
    stored: Stored | None = None
    pack = EMPTY
    for item in TableItem.batch_get(wanted, consistent_read=True):
        if isinstance(item, ChartEntryItem):
            pack = open_pack(item)
        elif isinstance(item, ResourceItem):
            stored = _stored(item)
    return stored, pack


def _stored(item: ResourceItem) -> Stored:
    body = None if item.deleted or item.body is None else open_body(item)
    a = Address(item.tenant, item.resource_type, item.resource_id, item.patient_id)
    return Stored(a, int(item.version), item.last_updated, body, frozenset(item.tokens or ()))
