"""Patient use cases: plain functions, no Chalice. Each write is one transaction
(resource + history + search entries + audit record + outbox event)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events import outbox
from events.patients import PatientChanged, PatientCreated, PatientDeleted, PatientUpdated
from functions.common.audit import AuditDraft
from functions.common.errors import (
    Gone,
    Invalid,
    Issue,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)
from functions.patients import search
from functions.patients.validation import validate_patient
from models import blind_index, keys, resources
from models.clock import iso, new_id, now
from models.items import ResourceItem, SearchEntryItem, TableItem
from models.resources import Version
from models.uow import TransactionCancelled, UnitOfWork

TYPE = "Patient"
DATA_CLASS = "phi"
MAX_ENTRY_DELETES_IN_TX = 95  # + tombstone, history, audit, outbox = DynamoDB's 100


@dataclass(frozen=True)
class Stored:
    resource: dict[str, Any]
    version: int
    last_updated: str


def _not_found(patient_id: str) -> NotFound:
    return NotFound(Issue("not-found", f"Patient/{patient_id} is not known.", ["Patient.id"]))


def _with_meta(body: dict[str, Any], patient_id: str, version: int, at: str) -> dict[str, Any]:
    meta = {**(body.get("meta") or {}), "versionId": str(version), "lastUpdated": at}
    return {
        "resourceType": TYPE,
        "id": patient_id,
        "meta": meta,
        **{k: v for k, v in body.items() if k not in ("resourceType", "id", "meta")},
    }


def _write(
    tenant: str,
    audit: AuditDraft,
    body: dict[str, Any],
    patient_id: str,
    version: int,
    expected: int | None,
) -> Stored:
    at = iso(now())
    resource = _with_meta(body, patient_id, version, at)
    toks = search.tokens_for(blind_index.tenant_key(tenant), resource)
    v = Version(tenant, TYPE, patient_id, patient_id, version, at, DATA_CLASS, False, toks.entries)
    blob = resources.seal(v, resource)
    uow = UnitOfWork()
    resources.stage_version(uow, v, blob, expected)
    resources.stage_search_entries(uow, v, blob, toks.all)
    audit.concerns(TYPE, patient_id, patient_id)
    audit.version = version
    audit.stage(uow, 201 if expected is None else 200)
    _stage_event(
        uow,
        PatientCreated if expected is None else PatientUpdated,
        tenant,
        audit,
        patient_id,
        version,
    )
    uow.commit()
    audit.committed()
    return Stored(resource, version, at)


def _stage_event(
    uow: UnitOfWork,
    event: type[PatientChanged],
    tenant: str,
    audit: AuditDraft,
    patient_id: str,
    version: int,
) -> None:
    outbox.stage(
        uow,
        event(
            tenant=tenant,
            actor=audit.actor,
            request_id=audit.request_id,
            patient_id=patient_id,
            resource_version=version,
        ),
    )


def create_patient(tenant: str, audit: AuditDraft, body: dict[str, Any]) -> Stored:
    clean = validate_patient(body, path_id=None)
    return _write(tenant, audit, clean, new_id(), 1, expected=None)


def _current(tenant: str, patient_id: str) -> ResourceItem:
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    item = resources.get_current(tenant, patient_id, TYPE, patient_id)
    if item is None:
        raise _not_found(patient_id)
    return item


def read_patient(tenant: str, audit: AuditDraft, patient_id: str) -> Stored:
    audit.concerns(TYPE, patient_id, patient_id)
    item = _current(tenant, patient_id)
    audit.version = int(item.version)
    if item.deleted:
        raise Gone(Issue("deleted", f"Patient/{patient_id} was deleted.", ["Patient.id"]))
    return Stored(resources.open_body(item), int(item.version), item.last_updated)


def parse_if_match(value: str | None) -> int:
    if not value:
        raise PreconditionRequired(
            Issue("required", 'Updates need If-Match: W/"<versionId>".', ["If-Match"])
        )
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise Invalid(Issue("invalid", 'If-Match must be W/"<versionId>".', ["If-Match"]))
    return int(tag)


def _classify_failure(tenant: str, patient_id: str, expected: int) -> Exception:
    item = resources.get_current(tenant, patient_id, TYPE, patient_id)
    if item is None:
        return _not_found(patient_id)
    if item.deleted:
        return Gone(Issue("deleted", f"Patient/{patient_id} was deleted.", ["Patient.id"]))
    return PreconditionFailed(
        Issue(
            "conflict",
            f"Version {expected} is not current (current is {int(item.version)}).",
            ["If-Match"],
        )
    )


def update_patient(
    tenant: str, audit: AuditDraft, patient_id: str, body: dict[str, Any], if_match: str | None
) -> Stored:
    """One transaction, no read: the put is conditional on the If-Match version.
    Entries of tokens this version dropped are removed from the table stream
    (events/stream.py), conditionally, so a later version is never harmed."""
    audit.concerns(TYPE, patient_id, patient_id)
    expected = parse_if_match(if_match)
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    clean = validate_patient(body, path_id=patient_id)
    try:
        return _write(tenant, audit, clean, patient_id, expected + 1, expected=expected)
    except TransactionCancelled as exc:
        if "resource" in exc.failed or "history" in exc.failed:
            raise _classify_failure(tenant, patient_id, expected) from None
        raise


def delete_patient(tenant: str, audit: AuditDraft, patient_id: str) -> None:
    """Tombstone + history + removal of every search entry, in one transaction.

    The entries are read with the current item (one Query), so entries an earlier
    update dropped and the stream has not yet tidied go too: a deleted patient is
    never found by search."""
    audit.concerns(TYPE, patient_id, patient_id)
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    item, entries = resources.current_with_entries(tenant, patient_id)
    if item is None:
        raise _not_found(patient_id)
    if item.deleted:
        audit.version = int(item.version)
        return  # FHIR: deleting a deleted resource succeeds
    version = int(item.version) + 1
    at = iso(now())
    v = Version(tenant, TYPE, patient_id, patient_id, version, at, DATA_CLASS, True, frozenset())
    uow = UnitOfWork()
    resources.stage_version(uow, v, None, expected=int(item.version))
    in_tx = {e.token for e in entries[:MAX_ENTRY_DELETES_IN_TX]}
    resources.stage_search_removal(uow, tenant, patient_id, in_tx)
    audit.version = version
    audit.stage(uow, 204)
    _stage_event(uow, PatientDeleted, tenant, audit, patient_id, version)
    try:
        uow.commit()
    except TransactionCancelled:
        raise _classify_failure(tenant, patient_id, int(item.version)) from None
    audit.committed()
    rest = {e.token for e in entries} - in_tx
    if rest:  # more stale entries than one transaction holds: same conditional tidy
        resources.remove_stale_entries(tenant, patient_id, rest, below_version=version)


def read_version(tenant: str, audit: AuditDraft, patient_id: str, version_id: str) -> Stored:
    audit.concerns(TYPE, patient_id, patient_id)
    if not keys.valid_id(patient_id) or not version_id.isdigit():
        raise _not_found(patient_id)
    item = resources.get_version(tenant, patient_id, TYPE, patient_id, int(version_id))
    if item is None:
        raise NotFound(
            Issue(
                "not-found",
                f"Patient/{patient_id} has no version {version_id}.",
                ["Patient.meta.versionId"],
            )
        )
    audit.version = int(item.version)
    if item.deleted:
        raise Gone(
            Issue(
                "deleted", f"Version {version_id} records the deletion.", ["Patient.meta.versionId"]
            )
        )
    return Stored(resources.open_body(item), int(item.version), item.last_updated)


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    last_updated: str
    resource: dict[str, Any] | None  # None: this version records the deletion


def history(
    tenant: str, audit: AuditDraft, patient_id: str, count: int, before: int | None
) -> tuple[list[HistoryEntry], int | None]:
    audit.concerns(TYPE, patient_id, patient_id)
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    items, more = resources.history_page(tenant, patient_id, TYPE, patient_id, count, before)
    if not items and before is None:
        raise _not_found(patient_id)
    audit.result_count = len(items)
    entries = [
        HistoryEntry(
            int(i.version),
            i.last_updated,
            None if i.deleted else resources.open_body(i),
        )
        for i in items
    ]
    next_before = entries[-1].version if more and entries else None
    return entries, next_before


@dataclass(frozen=True)
class SearchPage:
    resources: list[dict[str, Any]]
    next_cursor: str | None


def _start_key(tenant: str, primary: str | None, cursor: str | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    if not keys.valid_id(cursor):
        raise Invalid(Issue("invalid", "_cursor is not valid.", ["Patient.search._cursor"]))
    if primary is None:
        gsi1pk, sk = keys.patients_list_pk(tenant), keys.resource_sk(TYPE, cursor)
    else:
        gsi1pk, sk = keys.search_pk(tenant, primary), keys.search_entry_sk(primary)
    values = {"pk": keys.patient_pk(tenant, cursor), "sk": sk, "gsi1pk": gsi1pk, "gsi1sk": cursor}
    return {k: {"S": v} for k, v in values.items()}


def search_patients(tenant: str, audit: AuditDraft, params: dict[str, list[str]]) -> SearchPage:
    """One Query on gsi1: a blind-index partition (or the tenant's patient list)."""
    query = search.parse_query(params)
    audit.resource_type, audit.query_params = TYPE, query.names
    key = blind_index.tenant_key(tenant) if query.terms else b""
    primary, filters = query.primary_and_filters(key)
    gsi1pk = keys.patients_list_pk(tenant) if primary is None else keys.search_pk(tenant, primary)
    items, last = resources.query_index(
        gsi1pk, query.count, _start_key(tenant, primary, query.cursor), filters
    )
    found = [r for r in (_open(i) for i in items) if r is not None]
    audit.result_count = len(found)
    next_cursor = last["gsi1sk"]["S"] if last else None
    return SearchPage(found, next_cursor)


def _open(item: TableItem) -> dict[str, Any] | None:
    if isinstance(item, ResourceItem | SearchEntryItem) and not item.deleted:
        return resources.open_body(item)
    return None
