"""The one repository of versioned FHIR resources, whatever their type.

It seals bodies on the way in and opens them on the way out: callers give and
get plain resources (`Stored`), never ciphertext or PynamoDB items.

Where a resource lives is its `Address`: a resource of a patient's chart (the
Patient itself, an Encounter, ...) lives in the patient's item collection; a
resource of no patient (a Practitioner) in its own collection
(docs/adr/0007-addressing-and-keys.md). Each collection holds, per resource, the
current item `R#<Type>#<id>`, one history item per version and one search entry
per indexed token, `S#<Type>#<id>#<token>`.

Bodies are sealed once per version and the same blob is stored in the current
item, its history item and (when small) its search entries: the AAD names the
collection, the resource and the version, which every one of those items shares.
A search entry carries the body only up to `ENTRY_BODY_MAX` bytes, so that a
write with the most search entries allowed stays far inside DynamoDB's 4 MB
transaction limit whatever the body's size; a search page whose entries carry
no body reads the current items with one BatchGetItem (models/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError
from pynamodb.expressions.condition import Condition

from models import keys
from models.crypto import envelope
from models.items import (
    ConditionalCreateItem,
    HistoryItem,
    ResourceItem,
    SearchEntryItem,
    TableItem,
)
from models.uow import UnitOfWork

# Largest sealed body copied into search entries: 90 entries of this size plus a
# current and a history item at DynamoDB's 400 KB stay under the 4 MB limit.
ENTRY_BODY_MAX = 8 * 1024
BATCH_GET_MAX = 100  # DynamoDB's limit of keys per BatchGetItem


@dataclass(frozen=True)
class Address:
    """Which resource, and the item collection it lives in."""

    tenant: str
    resource_type: str
    resource_id: str
    patient_id: str | None  # the chart holding it; the Patient's own id for a Patient

    @property
    def pk(self) -> str:
        if self.patient_id is None:
            return keys.resource_pk(self.tenant, self.resource_type, self.resource_id)
        return keys.patient_pk(self.tenant, self.patient_id)

    @property
    def sk(self) -> str:
        return keys.resource_sk(self.resource_type, self.resource_id)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


AddressOf = Callable[[str], Address]  # a resource id -> its address (per type)


@dataclass(frozen=True)
class Stored:
    """One version of a resource as the domain sees it."""

    address: Address
    version: int
    last_updated: str
    resource: dict[str, Any] | None  # None: this version records the deletion
    entry_tokens: frozenset[str] = frozenset()

    @property
    def deleted(self) -> bool:
        return self.resource is None


@dataclass(frozen=True)
class NewVersion:
    address: Address
    version: int
    last_updated: str
    data_class: str
    resource: dict[str, Any] | None  # None: a tombstone
    entries: frozenset[str] = frozenset()  # tokens that get a search entry
    filters: frozenset[str] = frozenset()  # every token, for server-side filters
    state: str | None = None  # keyed MAC of a guarded status


def aad(pk: str, resource_type: str, resource_id: str, version: int) -> bytes:
    return f"{pk}|{resource_type}/{resource_id}|{version}".encode()


def _seal(v: NewVersion) -> bytes | None:
    if v.resource is None:
        return None
    a = v.address
    plaintext = json.dumps(v.resource, separators=(",", ":"), ensure_ascii=False).encode()
    return envelope().seal(
        plaintext,
        tenant=a.tenant,
        data_class=v.data_class,
        aad=aad(a.pk, a.resource_type, a.resource_id, v.version),
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


def _address(item: ResourceItem | HistoryItem | SearchEntryItem) -> Address:
    return Address(item.tenant, item.resource_type, item.resource_id, item.patient_id)


def _stored(item: ResourceItem | HistoryItem | SearchEntryItem) -> Stored:
    body = None if item.deleted or item.body is None else open_body(item)
    entries = getattr(item, "tokens", None) if isinstance(item, ResourceItem) else None
    return Stored(
        _address(item), int(item.version), item.last_updated, body, frozenset(entries or ())
    )


def _fields(v: NewVersion, blob: bytes | None) -> dict[str, Any]:
    a = v.address
    return {
        "tenant": a.tenant,
        "resource_type": a.resource_type,
        "resource_id": a.resource_id,
        "patient_id": a.patient_id,
        "version": v.version,
        "last_updated": v.last_updated,
        "data_class": v.data_class,
        "deleted": v.resource is None,
        "body": blob,
    }


def stage_version(
    uow: UnitOfWork, v: NewVersion, expected: int | None, from_states: frozenset[str] | None = None
) -> None:
    """Stage the current item (created, replaced at `expected`, or tombstoned), its
    history item and, unless a tombstone, its search entries (each overwriting the
    previous version's entry of the same token). `expected=None` means create: the
    item must not exist. `from_states`: the stored state MAC must be one of these
    (an item written before its type had states has none and passes)."""
    a = v.address
    blob = _seal(v)
    current = ResourceItem(
        a.pk,
        a.sk,
        **_fields(v, blob),
        tokens=set(v.entries) or None,
        filters=set(v.filters) or None,
        state=v.state,
    )
    if v.resource is not None:
        current.gsi1pk = keys.type_list_pk(a.tenant, a.resource_type)
        current.gsi1sk = a.resource_id
    if expected is None:
        condition = ResourceItem.pk.does_not_exist()
    else:
        condition = (ResourceItem.version == expected) & (ResourceItem.deleted == False)  # noqa: E712
        if from_states is not None:
            condition &= ResourceItem.state.does_not_exist() | ResourceItem.state.is_in(
                *sorted(from_states) or ["-"]
            )
    uow.put("resource", current, condition)
    history = HistoryItem(
        a.pk, keys.history_sk(a.resource_type, a.resource_id, v.version), **_fields(v, blob)
    )
    uow.put("history", history, HistoryItem.pk.does_not_exist())
    if blob is None:
        return
    inline = blob if len(blob) <= ENTRY_BODY_MAX else None
    for token in sorted(v.entries):
        entry = SearchEntryItem(
            a.pk,
            keys.search_entry_sk(a.resource_type, a.resource_id, token),
            **_fields(v, inline),
            token=token,
            filters=set(v.filters) or None,
        )
        entry.gsi1pk = keys.search_pk(a.tenant, token)
        entry.gsi1sk = a.resource_id
        uow.put("search", entry)


def stage_entry_removal(uow: UnitOfWork, address: Address, tokens: Iterable[str]) -> None:
    for token in sorted(tokens):
        sk = keys.search_entry_sk(address.resource_type, address.resource_id, token)
        uow.delete("search", SearchEntryItem(address.pk, sk))


def stage_live_check(uow: UnitOfWork, address: Address, label: str) -> None:
    """The transaction fails (as `label`) unless this resource exists, in this
    tenant's key space, and is not deleted: no write can point at nothing."""
    condition = ResourceItem.pk.exists() & (ResourceItem.deleted == False)  # noqa: E712
    uow.check(label, ResourceItem, address.pk, address.sk, condition)


def stage_claim(uow: UnitOfWork, address: Address, token: str, until: int) -> None:
    """Claim the conditional-create criteria of `token` for the new resource until
    `until` (epoch seconds); the transaction fails (as `claim`) while another
    resource holds an unexpired claim on the same criteria."""
    item = ConditionalCreateItem(
        keys.conditional_create_pk(address.tenant, address.resource_type, token),
        keys.CONDITIONAL_CREATE_SK,
        tenant=address.tenant,
        resource_type=address.resource_type,
        resource_id=address.resource_id,
        claimed_until=until,
        expires_at=until + 3600,
    )
    free = ConditionalCreateItem.pk.does_not_exist() | (
        ConditionalCreateItem.claimed_until < int(until - CLAIM_SECONDS)
    )
    uow.put("claim", item, free)


CLAIM_SECONDS = 60  # longer than search entries take to appear (well under a second)


def claimed(tenant: str, resource_type: str, token: str) -> str | None:
    """The id of the resource holding the claim on these criteria (consistent read)."""
    try:
        item = ConditionalCreateItem.get(
            keys.conditional_create_pk(tenant, resource_type, token),
            keys.CONDITIONAL_CREATE_SK,
            consistent_read=True,
        )
    except ConditionalCreateItem.DoesNotExist:
        return None
    return str(item.resource_id)


def remove_stale_entries(address: Address, tokens: set[str], below_version: int) -> int:
    """Delete entries of `tokens` still at a version older than `below_version`.

    Called from the table stream after an update dropped tokens. The condition
    keeps an entry that a later version has written again (ABA-safe), so the
    call is idempotent and order-insensitive."""
    removed = 0
    for token in sorted(tokens):
        sk = keys.search_entry_sk(address.resource_type, address.resource_id, token)
        entry = SearchEntryItem(address.pk, sk)
        try:
            entry.delete(condition=SearchEntryItem.version < below_version)
            removed += 1
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise  # throttling, timeouts, ...: fail the stream record so it is retried
            # already gone, or rewritten by a newer version
    return removed


def entry_tokens(address: Address) -> set[str]:
    """Every search entry the resource has, whatever version wrote it (one Query,
    keys only): entries an update dropped and the stream has not tidied yet too."""
    prefix = keys.search_entry_prefix(address.resource_type, address.resource_id)
    found = SearchEntryItem.query(
        address.pk,
        SearchEntryItem.sk.startswith(prefix),
        consistent_read=True,
        attributes_to_get=["sk"],
    )
    return {item.sk.removeprefix(prefix) for item in found}


def read_current(address: Address) -> Stored | None:
    """The current version (a tombstone's `resource` is None): one consistent GetItem."""
    try:
        item = ResourceItem.get(address.pk, address.sk, consistent_read=True)
    except ResourceItem.DoesNotExist:
        return None
    return _stored(item)


def read_version(address: Address, version: int) -> Stored | None:
    try:
        item = HistoryItem.get(
            address.pk,
            keys.history_sk(address.resource_type, address.resource_id, version),
            consistent_read=True,
        )
    except HistoryItem.DoesNotExist:
        return None
    return _stored(item)


def history_page(
    address: Address, count: int, before_version: int | None
) -> tuple[list[Stored], bool]:
    """Newest first; one Query. Returns the page and whether older versions remain."""
    t, r = address.resource_type, address.resource_id
    condition: Condition
    if before_version is None:
        condition = HistoryItem.sk.startswith(keys.history_prefix(t, r))
    else:
        condition = HistoryItem.sk.between(
            keys.history_sk(t, r, 0), keys.history_sk(t, r, max(before_version - 1, 0))
        )
    result = HistoryItem.query(
        address.pk, condition, scan_index_forward=False, page_size=count, consistent_read=True
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    found = [_stored(i) for i in items if isinstance(i, HistoryItem)]
    return found, page.get("LastEvaluatedKey") is not None


FilterGroups = list[list[str]]  # AND of ORs of tokens


def _filter(groups: FilterGroups, live_only: bool) -> Condition | None:
    condition: Condition | None = (ResourceItem.deleted == False) if live_only else None  # noqa: E712
    for group in groups:
        clause: Condition | None = None
        for token in group:
            one = ResourceItem.filters.contains(token)
            clause = one if clause is None else clause | one
        if clause is not None:
            condition = clause if condition is None else condition & clause
    return condition


@dataclass(frozen=True)
class Page:
    found: list[Stored]
    last_id: str | None  # resource id to continue after, when DynamoDB has more


def query_chart(
    tenant: str,
    patient_id: str,
    resource_type: str,
    count: int,
    after_id: str | None,
    groups: FilterGroups,
) -> Page:
    """A patient's current resources of one type (one consistent Query on the chart)."""
    pk = keys.patient_pk(tenant, patient_id)
    start = None
    if after_id is not None:
        start = {"pk": {"S": pk}, "sk": {"S": keys.resource_sk(resource_type, after_id)}}
    result = ResourceItem.query(
        pk,
        ResourceItem.sk.startswith(keys.resource_prefix(resource_type)),
        filter_condition=_filter(groups, live_only=True),
        consistent_read=True,
        page_size=count,
        last_evaluated_key=start,
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    found = [_stored(i) for i in items if isinstance(i, ResourceItem) and not i.deleted]
    last = page.get("LastEvaluatedKey")
    return Page(found, str(last["sk"]["S"]).rpartition("#")[2] if last else None)


def query_index(
    tenant: str,
    address_of: AddressOf,
    resource_type: str,
    token: str | None,
    count: int,
    after_id: str | None,
    groups: FilterGroups,
) -> Page:
    """One Query on gsi1: the search entries of `token`, or (no token) the tenant's
    current resources of the type."""
    if token is None:
        gsi1pk = keys.type_list_pk(tenant, resource_type)
    else:
        gsi1pk = keys.search_pk(tenant, token)
    start = None
    if after_id is not None:
        a = address_of(after_id)
        sk = a.sk if token is None else keys.search_entry_sk(resource_type, after_id, token)
        values = {"pk": a.pk, "sk": sk, "gsi1pk": gsi1pk, "gsi1sk": after_id}
        start = {k: {"S": v} for k, v in values.items()}
    result = TableItem.gsi1.query(
        gsi1pk,
        filter_condition=_filter(groups, live_only=False),
        page_size=count,
        last_evaluated_key=start,
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    last = page.get("LastEvaluatedKey")
    return Page(_bodies_for_page(tenant, items), str(last["gsi1sk"]["S"]) if last else None)


def read_many(addresses: list[Address]) -> dict[Address, Stored]:
    """Current versions (tombstones included) of many resources: one consistent
    BatchGetItem per 100 keys (DynamoDB's unprocessed keys are asked again)."""
    found: dict[Address, Stored] = {}
    unique = list(dict.fromkeys(addresses))
    for start in range(0, len(unique), BATCH_GET_MAX):
        chunk = [(a.pk, a.sk) for a in unique[start : start + BATCH_GET_MAX]]
        for item in ResourceItem.batch_get(chunk, consistent_read=True):
            stored = _stored(item)
            found[stored.address] = stored
    return found


def _bodies_for_page(tenant: str, items: list[TableItem]) -> list[Stored]:
    """The live resources of an index page.

    Entries that carry no body (their version's body was over `ENTRY_BODY_MAX`)
    are replaced by the resource's current version, read in one batch; an entry
    whose resource no longer holds its token (a later version dropped it and the
    stream has not yet tidied the entry) is left out rather than shown as a match."""
    live = [i for i in items if isinstance(i, ResourceItem | SearchEntryItem) and not i.deleted]
    missing = [_address(i) for i in live if i.body is None]
    current = read_many(missing) if missing else {}
    page: list[Stored] = []
    for item in live:
        if item.body is not None:
            page.append(_stored(item))
            continue
        now_version = current.get(_address(item))
        if now_version is None or now_version.deleted:
            continue
        token = getattr(item, "token", None)
        if token is not None and token not in now_version.entry_tokens:
            continue
        page.append(now_version)
    return page


def walk_chart(
    tenant: str, patient_id: str, count: int, after_sk: str | None, skip_classes: frozenset[str]
) -> tuple[list[Stored], str | None]:
    """One page of a patient's current resources, every type (`begins_with(sk, "R#")`,
    consistent), without deleted ones and without `skip_classes` (DynamoDB filters
    them: never opened, never returned). Returns the page and the `sk` to go on
    after, when DynamoDB has more."""
    pk = keys.patient_pk(tenant, patient_id)
    condition: Condition = ResourceItem.deleted == False  # noqa: E712
    for data_class in sorted(skip_classes):
        condition &= ResourceItem.data_class != data_class
    start = {"pk": {"S": pk}, "sk": {"S": after_sk}} if after_sk else None
    result = ResourceItem.query(
        pk,
        ResourceItem.sk.startswith(f"{keys.CURRENT}#"),
        filter_condition=condition,
        consistent_read=True,
        page_size=count,
        last_evaluated_key=start,
    )
    page = result.page_iter.next()
    items = [TableItem.from_raw_data(raw) for raw in page.get("Items", [])]
    found = [_stored(i) for i in items if isinstance(i, ResourceItem)]
    last = page.get("LastEvaluatedKey")
    return found, str(last["sk"]["S"]) if last else None
