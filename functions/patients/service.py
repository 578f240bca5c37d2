"""Patient use cases: plain functions, no Chalice. Each write is one transaction
(resource + history + search entries + audit record + outbox event)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events import outbox
from events.patients import PatientChanged, PatientCreated, PatientDeleted, PatientUpdated
from functions.common.audit import AuditDraft
from functions.common.errors import (
    Gone,
    Invalid,
    Issue,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
)
from functions.patients import labels as patient_labels
from functions.patients import search
from functions.patients.labels import LabelWrite
from functions.patients.validation import validate_patient
from models import blind_index, keys, resources
from models.clock import iso, new_id, now
from models.items import ResourceItem
from models.resources import Version
from models.uow import TransactionCancelled, UnitOfWork, WriteTooLarge

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
    labels: LabelWrite = LabelWrite.SET,
) -> Stored:
    at = iso(now())
    resource = _with_meta(body, patient_id, version, at)
    toks = search.tokens_for(blind_index.tenant_key(tenant), resource)
    v = Version(tenant, TYPE, patient_id, patient_id, version, at, DATA_CLASS, False, toks.entries)
    blob = resources.seal(v, resource)
    uow = UnitOfWork()
    resources.stage_version(uow, v, blob, expected)
    resources.stage_search_entries(uow, v, blob, toks.all)
    patient_labels.stage(uow, tenant, patient_id, resource, labels)
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
    _commit(uow, audit.token())
    audit.committed()
    return Stored(resource, version, at)


def _commit(uow: UnitOfWork, token: str | None = None) -> None:
    """Commit, turning a write over DynamoDB's limits (items, item size, transaction
    size) into a 413 that names the resource rather than a failed write."""
    try:
        uow.commit(token)
    except WriteTooLarge as exc:
        raise PayloadTooLarge(Issue("too-costly", exc.explain(TYPE), [TYPE])) from None


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


def create_patient(
    tenant: str, audit: AuditDraft, body: dict[str, Any], may_label: bool = False
) -> Stored:
    """`may_label`: the caller may set security labels; anyone else's are ignored."""
    clean = validate_patient(body, path_id=None)
    if not may_label:
        clean = patient_labels.with_labels(clean, [])
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
    version = search.whole_number(value.strip().removeprefix("W/").strip('"'))
    if version is None:  # ASCII digits only: "²".isdigit() is True, int("²") fails
        raise Invalid(Issue("invalid", 'If-Match must be W/"<versionId>".', ["If-Match"]))
    return version


def _classify_failure(tenant: str, patient_id: str, expected: int) -> Exception:
    item = resources.get_current(tenant, patient_id, TYPE, patient_id)
    return _failure_of(item, patient_id, expected)


def _failure_of(item: ResourceItem | None, patient_id: str, expected: int) -> Exception:
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
    tenant: str,
    audit: AuditDraft,
    patient_id: str,
    body: dict[str, Any],
    if_match: str | None,
    may_label: bool = False,
) -> Stored:
    """One transaction, no read: the put is conditional on the If-Match version.
    Entries of tokens this version dropped are removed from the table stream
    (events/stream.py), conditionally, so a later version is never harmed.

    Without `may_label`, the write is also conditional on the submitted labels
    being the stored ones; when they are not, the stored ones are read (one
    GetItem) and the write is sent again with them (functions/patients/labels.py)."""
    audit.concerns(TYPE, patient_id, patient_id)
    expected = parse_if_match(if_match)
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    clean = validate_patient(body, path_id=patient_id)
    first = LabelWrite.SET if may_label else LabelWrite.UNCHANGED
    try:
        return _update(tenant, audit, clean, patient_id, expected, first)
    except _LabelsDiffer:
        kept = patient_labels.with_labels(clean, _stored_labels(tenant, patient_id, expected))
        return _update(tenant, audit, kept, patient_id, expected, LabelWrite.KEPT)


class _LabelsDiffer(Exception):
    """The submitted labels are not the stored ones (and the caller may not change them)."""


def _update(
    tenant: str,
    audit: AuditDraft,
    clean: dict[str, Any],
    patient_id: str,
    expected: int,
    labels: LabelWrite,
) -> Stored:
    try:
        return _write(tenant, audit, clean, patient_id, expected + 1, expected, labels)
    except TransactionCancelled as exc:
        if "resource" in exc.failed or "history" in exc.failed:
            raise _classify_failure(tenant, patient_id, expected) from None
        if "labels" in exc.failed and labels is LabelWrite.UNCHANGED:
            raise _LabelsDiffer() from None
        raise


def _stored_labels(tenant: str, patient_id: str, expected: int) -> list[dict[str, Any]]:
    """The labels of the current version, which must be `expected` (else 404/410/412)."""
    item = resources.get_current(tenant, patient_id, TYPE, patient_id)
    if item is None or item.deleted or int(item.version) != expected:
        raise _failure_of(item, patient_id, expected)
    return patient_labels.of(resources.open_body(item))


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
        _commit(uow, audit.token())
    except TransactionCancelled:
        raise _classify_failure(tenant, patient_id, int(item.version)) from None
    audit.committed()
    rest = {e.token for e in entries} - in_tx
    if rest:  # more stale entries than one transaction holds: same conditional tidy
        resources.remove_stale_entries(tenant, patient_id, rest, below_version=version)


def read_version(tenant: str, audit: AuditDraft, patient_id: str, version_id: str) -> Stored:
    audit.concerns(TYPE, patient_id, patient_id)
    version = search.whole_number(version_id)
    if not keys.valid_id(patient_id) or version is None:
        raise _not_found(patient_id)
    item = resources.get_version(tenant, patient_id, TYPE, patient_id, version)
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


INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_since(value: str | None) -> str | None:
    """History's `_since`: a FHIR instant (date, time to the second, time zone),
    returned in the stored form of `lastUpdated` (UTC, milliseconds) so the two
    compare as strings."""
    if value is None:
        return None
    moment = None
    if INSTANT_RE.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:  # e.g. month 13
            moment = None
    if moment is None:
        raise Invalid(
            Issue(
                "invalid",
                "_since must be a FHIR instant, e.g. 2026-11-26T10:24:44Z.",
                ["Patient.history._since"],
            )
        )
    return iso(moment)


def history(
    tenant: str,
    audit: AuditDraft,
    patient_id: str,
    count: int,
    before: int | None,
    since: str | None = None,
) -> tuple[list[HistoryEntry], int | None]:
    """A page of versions, newest first; with `since`, only versions updated at or
    after it (the page ends, with no next link, at the first older one)."""
    audit.concerns(TYPE, patient_id, patient_id)
    if not keys.valid_id(patient_id):
        raise _not_found(patient_id)
    items, more = resources.history_page(tenant, patient_id, TYPE, patient_id, count, before)
    if not items and before is None:
        raise _not_found(patient_id)
    if since is not None:
        recent = [i for i in items if i.last_updated >= since]
        more = more and len(recent) == len(items)
        items = recent
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
    found = [resources.open_body(i) for i in resources.bodies_for_page(tenant, items)]
    audit.returned([str(r["id"]) for r in found])  # sets result_count; names each patient
    next_cursor = last["gsi1sk"]["S"] if last else None
    return SearchPage(found, next_cursor)

