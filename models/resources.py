"""Reads and staged writes of versioned FHIR resources in a patient's collection.

Bodies are sealed once per version and the same blob is stored in the current
item, its history item and (when small) its search entries: the AAD names the
patient's partition, the resource and the version, which every one of those
items shares.

A search entry carries the body only up to `ENTRY_BODY_MAX` bytes, so that a
create with the most search entries allowed stays far inside DynamoDB's 4 MB
transaction limit whatever the body's size; a search page whose entries carry
no body fetches the current items with one BatchGetItem (models/README.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError
from pynamodb.expressions.condition import Condition

from models import keys
from models.crypto import envelope
from models.items import HistoryItem, ResourceItem, SearchEntryItem, TableItem
from models.uow import UnitOfWork

# Largest sealed body copied into search entries: 90 entries of this size plus a
# current and a history item at DynamoDB's 400 KB stay under the 4 MB limit.
ENTRY_BODY_MAX = 8 * 1024
BATCH_GET_MAX = 100  # DynamoDB's limit of keys per BatchGetItem


@dataclass(frozen=True)
class Version:
    tenant: str
    resource_type: str
    resource_id: str
    patient_id: str
    version: int
    last_updated: str
    data_class: str
    deleted: bool
    tokens: frozenset[str]


def aad(pk: str, resource_type: str, resource_id: str, version: int) -> bytes:
    return f"{pk}|{resource_type}/{resource_id}|{version}".encode()


def seal(v: Version, resource: dict[str, Any]) -> bytes:
    pk = keys.patient_pk(v.tenant, v.patient_id)
    plaintext = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()
    return envelope().seal(
        plaintext,
        tenant=v.tenant,
        data_class=v.data_class,
        aad=aad(pk, v.resource_type, v.resource_id, v.version),
    )


def open_body(item: ResourceItem | HistoryItem | SearchEntryItem) -> dict[str, Any]:
    """Decrypt an item's body; the AAD is rebuilt from the item's own key."""
    assert item.body is not None
    plaintext = envelope().open(
        item.body,
        tenant=item.tenant,
        data_class=item.data_class,
        aad=aad(item.pk, item.resource_type, item.resource_id, int(item.version)),
    )
    body: dict[str, Any] = json.loads(plaintext)
    return body


def _fields(v: Version, blob: bytes | None) -> dict[str, Any]:
    return {
        "tenant": v.tenant,
        "resource_type": v.resource_type,
        "resource_id": v.resource_id,
        "patient_id": v.patient_id,
        "version": v.version,
        "last_updated": v.last_updated,
        "data_class": v.data_class,
        "deleted": v.deleted,
        "body": blob,
    }


def stage_version(uow: UnitOfWork, v: Version, blob: bytes | None, expected: int | None) -> None:
    """Stage the current item (created, replaced at `expected`, or tombstoned) and
    its history item. `expected=None` means create: the item must not exist."""
    pk = keys.patient_pk(v.tenant, v.patient_id)
    current = ResourceItem(
        pk,
        keys.resource_sk(v.resource_type, v.resource_id),
        **_fields(v, blob),
        tokens=set(v.tokens) or None,
    )
    if v.resource_type == "Patient" and not v.deleted:
        current.gsi1pk = keys.patients_list_pk(v.tenant)
        current.gsi1sk = v.resource_id
    if expected is None:
        condition = ResourceItem.pk.does_not_exist()
    else:
        condition = (ResourceItem.version == expected) & (ResourceItem.deleted == False)  # noqa: E712
    uow.put("resource", current, condition)
    history = HistoryItem(
        pk, keys.history_sk(v.resource_type, v.resource_id, v.version), **_fields(v, blob)
    )
    uow.put("history", history, HistoryItem.pk.does_not_exist())


def stage_search_entries(uow: UnitOfWork, v: Version, blob: bytes, filters: frozenset[str]) -> None:
    """One entry per token of `v.tokens`, each overwriting the previous version's
    entry; every entry carries `filters` so further criteria filter server-side."""
    pk = keys.patient_pk(v.tenant, v.patient_id)
    inline = blob if len(blob) <= ENTRY_BODY_MAX else None
    for token in sorted(v.tokens):
        entry = SearchEntryItem(
            pk, keys.search_entry_sk(token), **_fields(v, inline), token=token, tokens=set(filters)
        )
        entry.gsi1pk = keys.search_pk(v.tenant, token)
        entry.gsi1sk = v.patient_id
        uow.put("search", entry)


def stage_search_removal(uow: UnitOfWork, tenant: str, patient_id: str, tokens: set[str]) -> None:
    pk = keys.patient_pk(tenant, patient_id)
    for token in sorted(tokens):
        uow.delete("search", SearchEntryItem(pk, keys.search_entry_sk(token)))


def remove_stale_entries(tenant: str, patient_id: str, tokens: set[str], below_version: int) -> int:
    """Delete entries of `tokens` still at a version older than `below_version`.

    Called from the table stream after an update dropped tokens. The condition
    keeps an entry that a later version has written again (ABA-safe), so the
    call is idempotent and order-insensitive."""
    pk = keys.patient_pk(tenant, patient_id)
    removed = 0
    for token in sorted(tokens):
        entry = SearchEntryItem(pk, keys.search_entry_sk(token))
        try:
            entry.delete(condition=SearchEntryItem.version < below_version)
            removed += 1
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise  # throttling, timeouts, ...: fail the stream record so it is retried
            # already gone, or rewritten by a newer version
    return removed


def current_with_entries(
    tenant: str, patient_id: str
) -> tuple[ResourceItem | None, list[SearchEntryItem]]:
    """The current Patient item and every search entry of the patient, whatever
    version wrote it (one Query: `R#Patient#<id>` sorts just before `S#...`)."""
    pk = keys.patient_pk(tenant, patient_id)
    start = keys.resource_sk("Patient", patient_id)
    found = TableItem.query(pk, TableItem.sk.between(start, keys.SEARCH_END), consistent_read=True)
    current: ResourceItem | None = None
    entries: list[SearchEntryItem] = []
    for item in found:
        if isinstance(item, SearchEntryItem):
            entries.append(item)
        elif isinstance(item, ResourceItem) and item.sk == start:
            current = item
    return current, entries


def get_current(
    tenant: str, patient_id: str, resource_type: str, resource_id: str
) -> ResourceItem | None:
    try:
        return ResourceItem.get(
            keys.patient_pk(tenant, patient_id),
            keys.resource_sk(resource_type, resource_id),
            consistent_read=True,
        )
    except ResourceItem.DoesNotExist:
        return None


def get_version(
    tenant: str, patient_id: str, resource_type: str, resource_id: str, version: int
) -> HistoryItem | None:
    try:
        return HistoryItem.get(
            keys.patient_pk(tenant, patient_id),
            keys.history_sk(resource_type, resource_id, version),
            consistent_read=True,
        )
    except HistoryItem.DoesNotExist:
        return None


def history_page(
    tenant: str,
    patient_id: str,
    resource_type: str,
    resource_id: str,
    count: int,
    before_version: int | None,
) -> tuple[list[HistoryItem], bool]:
    """Newest first; one Query. Returns the page and whether older versions remain."""
    pk = keys.patient_pk(tenant, patient_id)
    prefix = keys.history_prefix(resource_type, resource_id)
    condition: Condition
    if before_version is None:
        condition = HistoryItem.sk.startswith(prefix)
    else:
        condition = HistoryItem.sk.between(
            keys.history_sk(resource_type, resource_id, 0),
            keys.history_sk(resource_type, resource_id, max(before_version - 1, 0)),
        )
    result = HistoryItem.query(
        pk, condition, scan_index_forward=False, page_size=count, consistent_read=True
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    return [i for i in items if isinstance(i, HistoryItem)], page.get(
        "LastEvaluatedKey"
    ) is not None


def query_index(
    gsi1pk: str,
    count: int,
    start_key: dict[str, dict[str, str]] | None,
    filter_tokens: list[str],
) -> tuple[list[TableItem], dict[str, Any] | None]:
    """One Query on gsi1: a page of current Patients or of search entries."""
    condition = None
    for token in filter_tokens:
        clause = SearchEntryItem.tokens.contains(token)
        condition = clause if condition is None else condition & clause
    result = TableItem.gsi1.query(
        gsi1pk, filter_condition=condition, page_size=count, last_evaluated_key=start_key
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, page.get("LastEvaluatedKey")


def current_items(
    tenant: str, wanted: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], ResourceItem]:
    """The current items of `(patient id, resource type, resource id)` triples (one
    consistent BatchGetItem per 100 keys; DynamoDB's unprocessed keys are asked
    again), by triple."""
    found: dict[tuple[str, str, str], ResourceItem] = {}
    unique = list(dict.fromkeys(wanted))
    for start in range(0, len(unique), BATCH_GET_MAX):
        keys_of = [
            (keys.patient_pk(tenant, p), keys.resource_sk(t, r))
            for p, t, r in unique[start : start + BATCH_GET_MAX]
        ]
        for item in ResourceItem.batch_get(keys_of, consistent_read=True):
            found[(item.patient_id, item.resource_type, item.resource_id)] = item
    return found


def _whose(item: ResourceItem | SearchEntryItem) -> tuple[str, str, str]:
    return (item.patient_id, item.resource_type, item.resource_id)


def bodies_for_page(tenant: str, items: list[TableItem]) -> list[ResourceItem | SearchEntryItem]:
    """The live items of a search page, each able to open its body.

    Entries that carry no body (their version's body was over `ENTRY_BODY_MAX`)
    are replaced by the patient's current item, read in one batch; an entry whose
    patient no longer holds its token (a later version dropped it and the stream
    has not yet tidied the entry) is left out rather than shown as a match."""
    live = [
        i for i in items if isinstance(i, ResourceItem | SearchEntryItem) and not i.deleted
    ]
    missing = [_whose(i) for i in live if i.body is None]
    current = current_items(tenant, missing) if missing else {}
    page: list[ResourceItem | SearchEntryItem] = []
    for item in live:
        if item.body is not None:
            page.append(item)
            continue
        now_item = current.get(_whose(item))
        token = getattr(item, "token", None)
        if now_item is None or now_item.deleted or now_item.body is None:
            continue
        if token is not None and token not in (now_item.tokens or set()):
            continue
        page.append(now_item)
    return page
