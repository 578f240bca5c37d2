"""Use cases of the notes workflow: sign, co-sign, the co-signature queue, the
unsigned-notes list, the checks a note's create or update runs (its author, its
addendum target) and a tenant's note templates. Plain functions, no Chalice.

`$sign` reads the note and the chart's note headers (one packed item of the 20
latest) in one BatchGetItem (a psychotherapy note, which gets no chart header,
only the note: one GetItem), then writes in ONE TransactWriteItems the note's
final version, its Provenance, the headers with this note's first (conditional
on the version read), the `NoteSigned` event, the generic events and the audit
record. A write that loses a race (the note changed, or another signature changed
the headers) is read again and retried; the read then tells 409 (already signed)
or 412 (stale If-Match).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from functions.common.authz import Role, check_loaded
from functions.common.caller import Caller
from functions.common.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    Issue,
    NotFound,
    PreconditionFailed,
)
from functions.engine import registry, service
from functions.engine.directory import practitioner_for
from functions.engine.registry import ResourceType
from functions.notes import documents, signing, templates
from functions.notes.declarations import (
    COSIGN,
    DOCUMENT_REFERENCE,
    PROVENANCE,
    SIGN,
)
from functions.notes.templates import Template
from models import chart, keys, resources
from models import notes as store
from models.chart import Pack, PackRead
from models.clock import CROCKFORD, iso, now
from models.resources import Stored
from models.uow import UnitOfWork

NOTE_HEADERS = Pack("3#note", 20)  # the chart's 20 latest note headers, one item
SIGN_ATTEMPTS = 4  # a lost race (the note, or the ring's slot) is read again and retried
PAGE = "99"  # search page size when a list reads every match
MAX_PAGES = 20
AUTHOR = "DocumentReference.author"
Seen = Callable[[ResourceType, Stored], Stored]  # the route's after-load checks (404 if hidden)
Shown = Callable[[ResourceType, Stored], "Stored | None"]  # the role's view (None: hidden)


# ----------------------------------------------------------------- who signs


def me(caller: Caller) -> Stored:
    """The signed-in user's Practitioner (looked up once a request); 403 without one."""
    stored = practitioner_for(caller)
    if stored is None or stored.resource is None:
        raise Forbidden(Issue("forbidden", "The signed-in user has no Practitioner record; "
                              "notes are written and signed under one.", [AUTHOR]))  # fmt: skip
    return stored


def _ref(stored: Stored) -> str:
    return f"Practitioner/{stored.address.resource_id}"


# ----------------------------------------------------------------- reads


def missing(decl: ResourceType) -> NotFound:
    """404 that does not repeat the id (the note may be another clinic's or hidden)."""
    return NotFound(Issue("not-found", f"This {decl.fhir_type} is not known.",
                          [f"{decl.fhir_type}.id"]))  # fmt: skip


def _read(caller: Caller, decl: ResourceType, note_id: str) -> tuple[Stored, PackRead]:
    """The note's current version and its chart's note headers (none for a note that
    gets no header): one BatchGetItem, or one GetItem for a psychotherapy note."""
    a = service.address_of(caller.tenant, decl, note_id)
    caller.touched(decl.name, note_id, a.patient_id if a else None)
    if a is None or a.patient_id is None:
        raise missing(decl)
    if decl.variant is None:
        pk, sk = chart.pack_keys(caller.tenant, a.patient_id, NOTE_HEADERS)
        stored, headers = store.read_with_pack(a, pk, sk)
    else:
        stored, headers = resources.read_current(a), chart.EMPTY
    if stored is None:
        raise missing(decl)
    caller.touched(decl.name, note_id, a.patient_id, stored.version)
    if stored.deleted:
        raise Gone(Issue("deleted", f"This {decl.fhir_type} was deleted.",
                         [f"{decl.fhir_type}.id"]))  # fmt: skip
    return stored, headers


def _check_version(stored: Stored, expected: int | None) -> None:
    if expected is not None and stored.version != expected:
        raise PreconditionFailed(
            Issue("conflict", f"Version {expected} is not current (current is "
                  f"{stored.version}).", ["If-Match"])
        )  # fmt: skip


# ----------------------------------------------------------------- $sign


def _check_author(note: dict[str, Any], signer: str) -> None:
    if signing.authors(note) != [signer]:
        raise Forbidden(Issue("forbidden", "Only the note's author signs it.", [AUTHOR]))


def _stage_provenance(
    uow: UnitOfWork, caller: Caller, new: Stored, signer: str, at: str, role: str
) -> Stored:
    assert new.resource is not None
    target = f"DocumentReference/{new.address.resource_id}/_history/{new.version}"
    body = signing.provenance(target, signer, at, role,  # type: ignore[arg-type]
                              documents.content_sha256(new.resource))  # fmt: skip
    return service.stage_create(uow, caller, registry.for_body(PROVENANCE, body), body)


def _event_fields(caller: Caller, decl: ResourceType, new: Stored, prov: Stored) -> dict[str, Any]:
    return {
        "tenant": caller.tenant,
        "actor": caller.actor,
        "request_id": caller.request_id,
        "resource_type": decl.name,
        "note_id": new.address.resource_id,
        "patient_id": new.address.patient_id,
        "note_version": new.version,
        "provenance_id": prov.address.resource_id,
        "encounter_id": signing.encounter_id(new.resource or {}),
    }


def _stage_headers(uow: UnitOfWork, caller: Caller, decl: ResourceType, new: Stored,
                   headers: PackRead, first: bool) -> None:  # fmt: skip
    """The chart's note headers with this note's: first (signed) or in its place
    (co-signed; left as they are when it is no longer among the latest)."""
    if decl.variant is not None or new.address.patient_id is None:
        return  # psychotherapy notes are never in the chart
    header = signing.header(new.address.resource_id, new.version, new.resource or {})
    others = [h for h in headers.entries if h.get("id") != new.address.resource_id]
    if first:
        entries = [header, *others]
    elif len(others) < len(headers.entries):
        entries = [header if h.get("id") == header["id"] else h for h in headers.entries]
    else:
        return
    chart.stage_pack(uow, caller.tenant, new.address.patient_id, NOTE_HEADERS, headers,
                     entries, decl.data_class)  # fmt: skip


def _stage_sign(
    uow: UnitOfWork, caller: Caller, decl: ResourceType, current: Stored, headers: PackRead
) -> Stored:
    """Everything `$sign` writes, staged: the final version, Provenance, header, event."""
    assert current.resource is not None
    signer = me(caller)
    author = _ref(signer)
    supervisor = signing.supervisor_of(signer.resource or {})
    at = iso(now())
    body = signing.signed_note(current.resource, author, at, supervisor)
    new = service.stage_replace(uow, caller, decl, current, body, step=SIGN)
    prov = _stage_provenance(uow, caller, new, author, at, "author")
    _stage_headers(uow, caller, decl, new, headers, first=True)
    supervisor_id = supervisor.partition("/")[2] if supervisor else None
    from events import outbox  # pydantic: with the first signature only
    from events.notes import NoteSigned

    outbox.stage(uow, NoteSigned(**_event_fields(caller, decl, new, prov),
                                 signer_id=signer.address.resource_id,
                                 awaiting_cosign=supervisor is not None,
                                 supervisor_id=supervisor_id))  # fmt: skip
    return new


def sign(caller: Caller, decl: ResourceType, note_id: str, if_match: str | None,
         seen: Seen) -> Stored:  # fmt: skip
    """`$sign`: the author locks the note (409 when already signed, 412 on a stale
    If-Match, 403 for anyone but its author)."""
    expected = service.parse_if_match(if_match) if if_match is not None else None
    author = _ref(me(caller))
    for attempt in range(SIGN_ATTEMPTS):
        current, headers = _read(caller, decl, note_id)
        current = seen(decl, current)
        _check_version(current, expected)
        if documents.signed(current.resource or {}):
            raise Conflict(Issue("business-rule", "The note is already signed; add an "
                                 "addendum instead.", ["DocumentReference.docStatus"]))  # fmt: skip
        _check_author(current.resource or {}, author)
        uow = UnitOfWork()
        new = _stage_sign(uow, caller, decl, current, headers)
        if _committed(caller, decl, uow, last=attempt == SIGN_ATTEMPTS - 1):
            return new
    raise AssertionError("unreachable")


def _committed(caller: Caller, decl: ResourceType, uow: UnitOfWork, last: bool) -> bool:
    """Commit (service.commit: one TransactWriteItems with the audit record); False
    when a concurrent write won (the note changed or the ring's slot was taken), so
    that the operation reads again: the next read answers 409/412, or it retries."""
    try:
        service.commit(caller, decl, uow, 200)
    except Conflict:
        if last:
            raise
        return False
    return True


# ----------------------------------------------------------------- $cosign


def _check_awaiting(note: dict[str, Any], supervisor: str) -> None:
    awaiting = signing.awaiting_cosign(note)
    if not documents.signed(note) or awaiting is None:
        raise Conflict(Issue("business-rule", "The note is not awaiting co-signature.",
                             ["DocumentReference.extension"]))  # fmt: skip
    if awaiting != supervisor:
        raise Forbidden(Issue("forbidden", "Only the author's supervisor co-signs the note.",
                              ["DocumentReference.authenticator"]))  # fmt: skip


def _stage_cosign(
    uow: UnitOfWork, caller: Caller, decl: ResourceType, current: Stored, headers: PackRead
) -> Stored:
    assert current.resource is not None
    supervisor = _ref(me(caller))
    at = iso(now())
    body = signing.cosigned_note(current.resource, supervisor)
    new = service.stage_replace(uow, caller, decl, current, body, step=COSIGN)
    prov = _stage_provenance(uow, caller, new, supervisor, at, "verifier")
    _stage_headers(uow, caller, decl, new, headers, first=False)
    from events import outbox  # pydantic: with the first signature only
    from events.notes import NoteCosigned

    outbox.stage(uow, NoteCosigned(**_event_fields(caller, decl, new, prov),
                                   signer_id=me(caller).address.resource_id))  # fmt: skip
    return new


def cosign(caller: Caller, decl: ResourceType, note_id: str, if_match: str | None,
           seen: Seen) -> Stored:  # fmt: skip
    """`$cosign`: the trainee's supervisor co-signs (403 for anyone else, 409 when the
    note awaits no co-signature, 412 on a stale If-Match)."""
    expected = service.parse_if_match(if_match) if if_match is not None else None
    supervisor = _ref(me(caller))
    for attempt in range(SIGN_ATTEMPTS):
        current, headers = _read(caller, decl, note_id)
        current = seen(decl, current)
        _check_version(current, expected)
        _check_awaiting(current.resource or {}, supervisor)
        uow = UnitOfWork()
        new = _stage_cosign(uow, caller, decl, current, headers)
        if _committed(caller, decl, uow, last=attempt == SIGN_ATTEMPTS - 1):
            return new
    raise AssertionError("unreachable")


# ----------------------------------------------------------------- lists


def _every_match(caller: Caller, decl: ResourceType, params: dict[str, list[str]]) -> list[Stored]:
    """Every match of a search, page after page (audited as searches are)."""
    found: list[Stored] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = {**params, "_count": [PAGE], **({"_cursor": [cursor]} if cursor else {})}
        result = service.search_resources(caller, decl, page)
        found.extend(result.found)
        cursor = result.next_cursor
        if cursor is None:
            break
    return found


def _confirmed(found: list[Stored], keep: Callable[[dict[str, Any]], bool]) -> list[Stored]:
    """The matches as they are now: a search entry of a token a later version dropped
    lives until the table stream removes it, so each match is read again (one
    BatchGetItem per 100) and kept only if its current version still qualifies."""
    current = resources.read_many([s.address for s in found]) if found else {}
    now_found = [current.get(s.address) for s in found]
    return [s for s in now_found if s is not None and s.resource is not None and keep(s.resource)]


def _listed(caller: Caller, decls: list[ResourceType], params: dict[str, list[str]],
            keep: Callable[[dict[str, Any]], bool], shown: Shown) -> list[Stored]:  # fmt: skip
    """The matches in every declaration the caller may search, confirmed and as the
    caller may see them; the audit record names every patient returned."""
    out: list[Stored] = []
    for decl in decls:
        matches = _confirmed(_every_match(caller, decl, params), keep)
        out += [v for s in matches if (v := shown(decl, s)) is not None]
    caller.returned(DOCUMENT_REFERENCE.name, len(out),
                    [s.address.patient_id for s in out if s.address.patient_id])  # fmt: skip
    return out


def cosign_queue(caller: Caller, decls: list[ResourceType], shown: Shown) -> list[Stored]:
    """The signed-in supervisor's notes awaiting co-signature (a search on awaiting-cosign)."""
    mine = _ref(me(caller))
    return _listed(caller, decls, {"awaiting-cosign": [mine]},
                   lambda note: signing.awaiting_cosign(note) == mine, shown)  # fmt: skip


def trainees(caller: Caller, supervisor: str) -> list[str]:
    """`Practitioner/<id>` of the supervisor's trainees. Practitioner has no search
    parameter on the supervisor extension: the tenant's Practitioners are listed
    (service.find, pages of 99) and filtered, which is fine at clinic size."""
    decl = registry.require("Practitioner")
    found: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = {"_count": [PAGE], **({"_cursor": [cursor]} if cursor else {})}
        result = service.find(caller.tenant, decl, page)
        found += [f"Practitioner/{s.address.resource_id}" for s in result.found
                  if signing.supervisor_of(s.resource or {}) == supervisor]  # fmt: skip
        cursor = result.next_cursor
        if cursor is None:
            break
    return found


def created(stored: Stored) -> str:
    """When a draft was written: its `date`, else the time in its id (a ULID)."""
    date = (stored.resource or {}).get("date")
    if isinstance(date, str):
        return date
    local = stored.address.resource_id[-keys.LOCAL_ID_LENGTH :]
    millis = 0
    for char in local[:10]:
        millis = millis * 32 + CROCKFORD.index(char)
    return iso(datetime.fromtimestamp(millis / 1000, UTC))


def unsigned(caller: Caller, decls: list[ResourceType],
             shown: Shown) -> list[Stored]:  # fmt: skip
    """The caller's drafts older than the tenant's `unsigned_note_days` and, for a
    supervisor, those of their trainees; oldest first."""
    from functions.common import tenant_settings

    mine = _ref(me(caller))
    authors = [mine]
    if Role.SUPERVISOR in caller.principal.roles:
        authors += trainees(caller, mine)
    params = {"author": [",".join(authors)], "doc-status": ["preliminary"]}
    wanted = set(authors)

    def keep(note: dict[str, Any]) -> bool:
        return not documents.signed(note) and bool(wanted & set(signing.authors(note)))

    drafts = _listed(caller, decls, params, keep, shown)
    days = tenant_settings.get(caller.tenant).unsigned_note_days
    late = set(documents.overdue([(s.address.resource_id, created(s)) for s in drafts],
                                 iso(now()), days))  # fmt: skip
    out = sorted((s for s in drafts if s.address.resource_id in late), key=created)
    caller.returned(DOCUMENT_REFERENCE.name, len(out),
                    [s.address.patient_id for s in out if s.address.patient_id])  # fmt: skip
    return out


# ----------------------------------------------------------------- create / update checks


def note_precheck(caller: Caller, stored: Stored | None, body: dict[str, Any]) -> None:
    """Before a note is created or updated: a new note's author is the writer's own
    Practitioner (400 without one, 403 for anyone else's); an update keeps the
    author; an addendum appends to a signed note of the same patient and class."""
    if stored is None:
        _check_new_author(caller, body)
    elif signing.authors(body) != signing.authors(stored.resource or {}):
        raise Invalid(Issue("invariant", "A note's author does not change.", [AUTHOR]))
    target = documents.is_addendum(body)
    before = documents.is_addendum(stored.resource or {}) if stored is not None else None
    if target is not None and target != before:
        _check_addendum(caller, body, target)


def _check_new_author(caller: Caller, body: dict[str, Any]) -> None:
    named = signing.authors(body)
    if not named:
        raise Invalid(Issue("required", "A note names its author: the writer's own "
                            "Practitioner.", [AUTHOR]))  # fmt: skip
    if named != [_ref(me(caller))]:
        raise Forbidden(Issue("forbidden", "A note's author must be the signed-in user's own "
                              "Practitioner.", [AUTHOR]))  # fmt: skip


RELATES = "DocumentReference.relatesTo[0].target.reference"


def _unknown_target() -> Invalid:
    return Invalid(Issue("value", "An addendum must append to a known note of the same "
                         "patient and class.", [RELATES]))  # fmt: skip


def _patient_of(body: dict[str, Any]) -> str | None:
    subject = body.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    compartment = DOCUMENT_REFERENCE.compartment
    if not isinstance(reference, str) or compartment is None:
        return None
    return compartment.patient_in(reference)


def _check_addendum(caller: Caller, body: dict[str, Any], target_id: str) -> None:
    """Same patient and same class (known from the ids, before any read), then the
    target must exist, be visible to the writer, and be signed (409 otherwise)."""
    decl = registry.for_id(DOCUMENT_REFERENCE, target_id)
    own = registry.for_body(DOCUMENT_REFERENCE, body)
    patient = _patient_of(body)
    a = service.address_of(caller.tenant, decl, target_id)
    if decl is not own or a is None or a.patient_id != patient:
        raise _unknown_target()
    target = resources.read_current(a)
    if target is None or target.resource is None:
        raise _unknown_target()
    try:
        check_loaded(caller.principal, decl.fhir_type, decl.data_class, target.resource)
    except ApiError:
        raise _unknown_target() from None
    if not documents.signed(target.resource):
        raise Conflict(Issue("business-rule", "An addendum appends to a signed note; edit "
                             "the draft instead.", [RELATES]))  # fmt: skip


# ----------------------------------------------------------------- templates


def _no_template(key: str) -> NotFound:
    return NotFound(Issue("not-found", "No note template has this key.", ["key"]))


def _built_in(key: str) -> Conflict:
    return Conflict(Issue("business-rule", "Built-in templates cannot be changed or deleted; "
                          "save the clinic's own under another key.", ["key"]))  # fmt: skip


def _stored_template(data: dict[str, Any]) -> Template | None:
    """A stored template read back (None if it no longer passes, e.g. its key has
    since become a built-in one)."""
    try:
        return templates.template_from_json(data)
    except Invalid:
        return None


def list_templates(tenant: str) -> list[tuple[Template, bool]]:
    """The built-in templates, then the tenant's own: (template, built in)."""
    own = [t for d in store.list_templates(tenant) if (t := _stored_template(d)) is not None]
    return [(t, True) for t in templates.BUILT_IN] + [(t, False) for t in own]


def get_template(tenant: str, key: str) -> tuple[Template, bool]:
    """A built-in template or one of the tenant's (404 otherwise)."""
    found = templates.built_in(key)
    if found is not None:
        return found, True
    data = store.get_template(tenant, key) if templates.KEY.fullmatch(key) else None
    own = _stored_template(data) if data is not None else None
    if own is None:
        raise _no_template(key)
    return own, False


def put_template(caller: Caller, key: str, data: Any) -> Template:
    """Create or replace one of the tenant's templates (400 naming every fault; the
    body's key, when given, is the path's; 409 for a built-in key)."""
    if key in templates.BUILT_IN_KEYS:
        raise _built_in(key)
    if isinstance(data, dict):
        if data.get("key", key) != key:
            raise Invalid(Issue("value", "key must be the key in the path.", ["key"]))
        data = {**data, "key": key}
    template = templates.template_from_json(data)
    store.put_template(caller.tenant, key, templates.template_to_json(template), iso(now()),
                       caller.actor)  # fmt: skip
    return template


def delete_template(caller: Caller, key: str) -> None:
    """Delete one of the tenant's templates (409 for a built-in one, 404 if none)."""
    if key in templates.BUILT_IN_KEYS:
        raise _built_in(key)
    if not templates.KEY.fullmatch(key) or not store.delete_template(caller.tenant, key):
        raise _no_template(key)
