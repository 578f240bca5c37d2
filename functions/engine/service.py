"""Use cases of every registered resource type: create, read, vread, update,
delete, history, search. Plain functions, no Chalice, no ciphertext, no items.

Each write is one transaction: the current item, its history item, its search
entries, its labels MAC, a check that the patient it belongs to is live, the
audit record and the outbox event (models/README.md has the costs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from functions.common.caller import Caller
from functions.common.errors import (
    Conflict,
    Gone,
    Invalid,
    Issue,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
)
from functions.common.settings import api_settings
from functions.engine import labels, registry, search
from functions.engine import values as val
from functions.engine.labels import LabelWrite
from functions.engine.registry import Change, OperationStep, ResourceType
from functions.engine.search import MAX_MATCH_SET, Query
from functions.engine.validation import validate_resource
from models import blind_index, keys, resources
from models.clock import iso, new_id, now
from models.resources import Address, NewVersion, Stored
from models.uow import TransactionCancelled, UnitOfWork, WriteTooLarge

MAX_ENTRY_DELETES_IN_TX = 88  # + tombstone, history, labels, chart entry, audit, outbox <= 100
BLIND_UPDATE_ATTEMPTS = 3  # updates without If-Match: last writer wins, retried on a race
RING_ATTEMPTS = 4  # a write whose chart slot a concurrent write took is run again
READ_PAGE = 200  # items per Query page when a search reads its whole match set


# ----------------------------------------------------------------- addressing


def address_of(tenant: str, decl: ResourceType, resource_id: str) -> Address | None:
    """Where a resource lives, from its id alone (None: no such id can exist)."""
    if not keys.valid_id(resource_id):
        return None
    if decl.is_patient:
        return Address(tenant, decl.name, resource_id, resource_id)
    if decl.compartment is not None:
        patient_id = keys.patient_of(resource_id)
        marker = decl.variant.marker if decl.variant is not None else ""
        if patient_id is None or keys.marker_of(resource_id) != marker:
            return None
        return Address(tenant, decl.name, resource_id, patient_id)
    return Address(tenant, decl.name, resource_id, None)


def not_found(decl: ResourceType, resource_id: str) -> NotFound:
    """404 naming the resource (the id the client sent; never content)."""
    return NotFound(
        Issue("not-found", f"{decl.name}/{resource_id} is not known.", [f"{decl.name}.id"])
    )


def _gone(decl: ResourceType, resource_id: str) -> Gone:
    return Gone(Issue("deleted", f"{decl.name}/{resource_id} was deleted.", [f"{decl.name}.id"]))


def _located(caller: Caller, decl: ResourceType, resource_id: str) -> Address:
    a = address_of(caller.tenant, decl, resource_id)
    caller.touched(decl.name, resource_id, a.patient_id if a else None)
    if a is None:
        raise not_found(decl, resource_id)
    return a


# ----------------------------------------------------------------- writes


def _with_meta(
    decl: ResourceType, body: dict[str, Any], rid: str, v: int, at: str
) -> dict[str, Any]:
    meta = {**(body.get("meta") or {}), "versionId": str(v), "lastUpdated": at}
    return {
        "resourceType": decl.fhir_type,
        "id": rid,
        "meta": meta,
        **{k: x for k, x in body.items() if k not in ("resourceType", "id", "meta")},
    }


def _patient_named(decl: ResourceType, body: dict[str, Any]) -> str:
    """The patient a chart resource's body names (400 naming the element otherwise)."""
    assert decl.compartment is not None
    if decl.compartment.through:
        return _patient_through(decl, body)
    element = decl.compartment.element
    where = f"{decl.name}.{element}"
    target = decl.compartment.target
    ref = body.get(element)
    text = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(text, str) and "://" in text and not _ours(text, target):
        raise Invalid(
            Issue("value", f"{element} must reference a {target} of this server "
                  f"({target}/<id>).", [where])
        )  # fmt: skip
    patient_id = decl.compartment.patient_in(text) if isinstance(text, str) else None
    if patient_id is None:
        raise Invalid(Issue("required", f"{element} must reference the {target}.", [where]))
    if not keys.valid_id(patient_id) or len(patient_id) > keys.MAX_PATIENT_ID:
        raise Invalid(Issue("value", f"{element} does not name a known {target}.", [where]))
    return patient_id


def _patient_through(decl: ResourceType, body: dict[str, Any]) -> str:
    """The one patient whose chart holds every resource `element` references."""
    assert decl.compartment is not None
    element = decl.compartment.element
    refs = body.get(element)
    listed = refs if isinstance(refs, list) else []
    texts = [r.get("reference") for r in listed if isinstance(r, dict)]
    ids = [t.split("/")[1] for t in texts if isinstance(t, str) and t.count("/") in (1, 3)]
    patients = {keys.patient_of(i) for i in ids}
    if len(patients) != 1 or None in patients or len(ids) != len(texts):
        raise Invalid(
            Issue("value", f"{element} must reference resources of one patient's chart.",
                  [f"{decl.name}.{element}"])
        )  # fmt: skip
    (patient_id,) = patients
    assert patient_id is not None
    return patient_id


def _ours(url: str, target: str) -> bool:
    """An absolute reference into this server (its configured public base URL)."""
    return url.startswith(f"{api_settings().public_base_url}/{target}/")


REFERENCE_LABEL = "reference:"  # + the element's path, in a cancelled transaction


def _stage_reference_checks(
    uow: UnitOfWork, decl: ResourceType, tenant: str, resource: dict[str, Any]
) -> None:
    """Every reference a declaration checks must name a live resource of this tenant:
    a ConditionCheck each, in the write's own transaction."""
    for rule in decl.references:
        raw = val.strings(f"{rule.path}.reference")(resource)
        if any(r.startswith(f"{rule.target}/") and val.normalize_reference(r) is None for r in raw):
            raise _unknown_reference(decl, rule.path, rule.target)  # e.g. "Practitioner/a#b"
        targets = {
            r for r in val.references(rule.path)(resource) if r.startswith(f"{rule.target}/")
        }
        target_decl = registry.require(rule.target)
        for ref in sorted(targets):
            rid = ref.partition("/")[2]
            target = address_of(tenant, target_decl, rid)
            if target is None:
                raise _unknown_reference(decl, rule.path, rule.target)
            resources.stage_live_check(uow, target, f"{REFERENCE_LABEL}{rule.path}")


def _unknown_reference(decl: ResourceType, path: str, target: str) -> Invalid:
    return Invalid(
        Issue("value", f"{path} does not name a known {target} of this organisation.",
              [f"{decl.name}.{path}"])
    )  # fmt: skip


def _refused_reference(decl: ResourceType, failed: list[str]) -> Invalid | None:
    for label in failed:
        if label.startswith(REFERENCE_LABEL):
            path = label.removeprefix(REFERENCE_LABEL)
            rule = next(r for r in decl.references if r.path == path)
            return _unknown_reference(decl, path, rule.target)
    return None


def _unknown_patient(decl: ResourceType) -> Invalid:
    element = decl.compartment.element if decl.compartment else "subject"
    return Invalid(
        Issue(
            "value",
            f"{element} does not name a known Patient of this organisation "
            "(unknown, deleted, or another organisation's).",
            [f"{decl.name}.{element}"],
        )
    )


def _commit(decl: ResourceType, uow: UnitOfWork, token: str | None) -> None:
    """Commit, turning a write over DynamoDB's limits into a 413 naming the type."""
    try:
        uow.commit(token)
    except WriteTooLarge as exc:
        raise PayloadTooLarge(Issue("too-costly", exc.explain(decl.name), [decl.name])) from None


def _stage_event(
    uow: UnitOfWork, caller: Caller, decl: ResourceType, change: Change, a: Address, version: int
) -> None:
    """The change's domain event, in the same transaction (outbox). Event models
    (pydantic) are imported with the first write, not at cold start."""
    from events import outbox

    outbox.stage(uow, _event(caller, decl, change, a, version))


def _event(caller: Caller, decl: ResourceType, change: Change, a: Address, version: int) -> Any:
    assert decl.events is not None
    return decl.events(
        change,
        {
            "tenant": a.tenant,
            "actor": caller.actor,
            "request_id": caller.request_id,
            "resource_type": a.resource_type,
            "resource_id": a.resource_id,
            "patient_id": a.patient_id,
            "resource_version": version,
        },
    )


# ----------------------------------------------------------------- guarded statuses


def _status(decl: ResourceType, resource: dict[str, Any] | None) -> str | None:
    """The guarded status of a body (400 naming the element when it is not one of
    the machine's); None for a type without a state machine."""
    rule = decl.states
    if rule is None or resource is None:
        return None
    value = resource.get(rule.element)
    if not isinstance(value, str) or value not in rule.transitions:
        raise Invalid(
            Issue("value", f"{rule.element} must be one of {', '.join(rule.statuses)}.",
                  [f"{decl.name}.{rule.element}"])
        )  # fmt: skip
    return value


def _state_mac(a: Address, decl: ResourceType, status: str) -> str:
    """Per resource: two resources in the same status have unrelated MACs."""
    key = blind_index.tenant_key(a.tenant)
    return blind_index.token(key, f"{decl.name}.state", f"{a.resource_id}|{status}")


def _macs(a: Address, decl: ResourceType, statuses: frozenset[str]) -> frozenset[str]:
    return frozenset(_state_mac(a, decl, s) for s in statuses)


def _refused_transition(decl: ResourceType, before: str | None, after: str | None) -> Conflict:
    rule = decl.states
    assert rule is not None
    where = [f"{decl.name}.{rule.element}"]
    if after is None:  # a delete
        allowed = ", ".join(sorted(rule.deletable)) or "no status"
        return Conflict(
            Issue("business-rule", f"{decl.name} that is {before} cannot be deleted "
                  f"(only when {allowed}).", where)
        )  # fmt: skip
    if before is None:
        allowed = ", ".join(s for s in rule.statuses if s in rule.initial)
        return Conflict(
            Issue("business-rule", f"New {decl.name} cannot be {after}; it starts as "
                  f"{allowed}.", where)
        )  # fmt: skip
    targets = ", ".join(s for s in rule.statuses if s in rule.transitions[before])
    return Conflict(
        Issue("business-rule", f"{decl.name} cannot go from {before} to {after}; from "
              f"{before} it may become {targets}.", where)
    )  # fmt: skip


def _check_transition(decl: ResourceType, before: Stored | None, after: str | None) -> None:
    """In memory, when the stored version is at hand (the transaction checks again)."""
    rule = decl.states
    if rule is None or before is None or before.resource is None:
        return
    was = before.resource.get(rule.element)
    if not isinstance(was, str) or was not in rule.transitions:
        return  # stored before the rule existed: the transaction lets it through too
    if (after is None and was not in rule.deletable) or (
        after is not None and after not in rule.transitions[was]
    ):
        raise _refused_transition(decl, was, after)


def _stage(
    uow: UnitOfWork,
    caller: Caller,
    decl: ResourceType,
    a: Address,
    body: dict[str, Any],
    version: int,
    expected: int | None,
    how: LabelWrite,
    claim: str | None = None,
    step: OperationStep | None = None,
) -> Stored:
    """Stage one version of one resource (no audit record, no commit): the current
    and history items, search entries, state MAC, chart entries, the checks that
    its patient and checked references are live, its labels MAC and its event.
    `claim`: the keyed MAC of a conditional create's criteria, claimed in the same
    transaction (models/resources.py, `stage_claim`)."""
    at = iso(now())
    resource = _with_meta(decl, body, a.resource_id, version, at)
    toks = search.index(decl, blind_index.tenant_key(a.tenant), resource)
    status = _status(decl, resource)
    state = _state_mac(a, decl, status) if status is not None else None
    from_states = None
    if status is not None and decl.states is not None and expected is not None:
        start = step.start if step is not None else decl.states.predecessors(status)
        from_states = _macs(a, decl, start)
    new = NewVersion(a, version, at, decl.data_class, resource, toks.entries, toks.all, state)
    resources.stage_version(uow, new, expected, from_states)
    if decl.compartment is not None and a.patient_id is not None:
        owner = Address(a.tenant, decl.compartment.target, a.patient_id, a.patient_id)
        resources.stage_live_check(uow, owner, "patient")
    _stage_reference_checks(uow, decl, a.tenant, resource)
    _stage_chart(uow, decl, a, resource)
    labels.stage(uow, a, resource, how)
    if claim is not None:
        resources.stage_claim(uow, a, claim, int(now().timestamp()) + resources.CLAIM_SECONDS)
    change = Change.CREATED if expected is None else Change.UPDATED
    _stage_event(uow, caller, decl, change, a, version)
    stored = Stored(a, version, at, resource, toks.entries)
    if decl.companions is not None:
        decl.companions(uow, caller, stored, change)
    return stored


def _stage_chart(
    uow: UnitOfWork, decl: ResourceType, a: Address, resource: dict[str, Any] | None
) -> None:
    """The resource's chart entries (docs/adr/0008), in the write's own transaction."""
    if decl.chart is None or a.patient_id is None:
        return
    from models import chart

    for entry in decl.chart(a.resource_id, resource):
        chart.stage_entry(uow, a.tenant, a.patient_id, entry.key, decl.data_class, entry.summary)


def _write(
    caller: Caller,
    decl: ResourceType,
    a: Address,
    body: dict[str, Any],
    version: int,
    expected: int | None,
    how: LabelWrite,
    claim: str | None = None,
) -> Stored:
    uow = UnitOfWork()
    stored = _stage(caller=caller, uow=uow, decl=decl, a=a, body=body, version=version,
                    expected=expected, how=how, claim=claim)  # fmt: skip
    caller.touched(decl.name, a.resource_id, a.patient_id, version)
    caller.stage_audit(uow, 201 if expected is None else 200)
    _commit(decl, uow, caller.token())
    caller.committed()
    return stored


# ----------------------------------------------------------------- composed writes
# A workflow's state change (sign a note, score a questionnaire) writes several
# resources in one transaction: it stages each with these, then `commit`s once.


def stage_create(
    uow: UnitOfWork, caller: Caller, decl: ResourceType, body: dict[str, Any]
) -> Stored:
    """Validate and stage a new resource (no labels of the caller's: the workflow
    decides its bodies). Raises 400/409 as `create` would."""
    clean = _validated(decl, body, None, may_label=False)
    _check_new(caller, decl, clean)
    a = _new_address(caller.tenant, decl, clean)
    return _stage(uow, caller, decl, a, clean, 1, None, LabelWrite.SET)


def stage_replace(
    uow: UnitOfWork,
    caller: Caller,
    decl: ResourceType,
    current: Stored,
    body: dict[str, Any],
    step: OperationStep | None = None,
) -> Stored:
    """Stage the next version of a resource read as `current`: conditional on it
    still being that version and, with a state machine, on the status change being
    allowed: by the table, or by the operation's `step` (e.g. `$sign` may take a
    preliminary note to final, which no update may). The type's write guards are
    not run: the operation is the rule here. Labels are kept."""
    a = current.address
    clean = validate_resource(decl.fhir_type, body, path_id=a.resource_id, rules=decl.rules)
    kept = labels.of(current.resource or {})
    status = _status(decl, clean)
    if step is None:
        _check_transition(decl, current, status)
    elif status != step.to or _status(decl, current.resource) not in step.start:
        raise _refused_step(decl, step, _status(decl, current.resource))
    return _stage(uow, caller, decl, a, labels.with_labels(clean, kept), current.version + 1,
                  current.version, LabelWrite.KEPT, step=step)  # fmt: skip


def _refused_step(decl: ResourceType, step: OperationStep, status: str | None) -> Conflict:
    rule = decl.states
    element = rule.element if rule is not None else "status"
    allowed = ", ".join(sorted(step.start))
    return Conflict(
        Issue("business-rule", f"{step.name} needs a {decl.fhir_type} whose {element} is "
              f"{allowed}; this one is {status}.", [f"{decl.fhir_type}.{element}"])
    )  # fmt: skip


def commit(caller: Caller, decl: ResourceType, uow: UnitOfWork, status: int) -> None:
    """Commit a composed write with the request's audit record: one TransactWriteItems.
    A resource that changed meanwhile is a 409 (read it again and retry); an unknown
    patient or reference a 400, as for single writes."""
    caller.stage_audit(uow, status)
    try:
        _commit(decl, uow, caller.token())
    except TransactionCancelled as exc:
        if "patient" in exc.failed:
            raise _unknown_patient(decl) from None
        if (refused := _refused_reference(decl, exc.failed)) is not None:
            raise refused from None
        raise Conflict(
            Issue("conflict", f"The {decl.fhir_type} changed while this was saved; read it "
                  "again and retry.", [decl.fhir_type])
        ) from None  # fmt: skip
    caller.committed()


def read_for_change(caller: Caller, decl: ResourceType, resource_id: str) -> Stored:
    """The current version of a resource a workflow operation is about to change
    (404/410 otherwise); the caller's audit record names it."""
    return read(caller, decl, resource_id)


def _validated(
    decl: ResourceType, body: dict[str, Any], path_id: str | None, may_label: bool
) -> dict[str, Any]:
    clean = validate_resource(decl.fhir_type, body, path_id=path_id, rules=decl.rules)
    return clean if may_label else labels.with_labels(clean, [])


@dataclass(frozen=True)
class Created:
    stored: Stored
    created: bool  # False: a conditional create found its match


def create(
    caller: Caller,
    decl: ResourceType,
    body: dict[str, Any],
    may_label: bool = False,
    if_none_exist: dict[str, list[str]] | None = None,
) -> Created:
    """`may_label`: the caller may set security labels; anyone else's are dropped.
    `if_none_exist`: FHIR conditional create - the criteria are searched first
    (one Query): one match is returned as it is, several are a 412. The create
    also claims the criteria for a minute, in its own transaction, so that two
    identical conditional creates racing each other (before the search index
    shows the first) make one resource: the second finds the claim and answers
    with the first one's resource."""
    clean = _validated(decl, body, None, may_label)
    claim: str | None = None
    if if_none_exist:
        claim = _criteria_token(caller.tenant, decl, if_none_exist)
        found = _conditional_matches(caller, decl, if_none_exist)
        if len(found) > 1:
            raise PreconditionFailed(
                Issue("duplicate", "The If-None-Exist criteria match more than one resource.")
            )
        if found:
            existing = found[0]
            caller.touched(decl.name, existing.address.resource_id, existing.address.patient_id,
                           existing.version)  # fmt: skip
            return Created(existing, created=False)
    _check_new(caller, decl, clean)
    a = _new_address(caller.tenant, decl, clean)
    return _create_at(caller, decl, a, clean, claim)


def _check_new(caller: Caller, decl: ResourceType, clean: dict[str, Any]) -> None:
    """Guards, the initial status and the type's precheck, before a create."""
    for guard in decl.guards:
        guard(None, clean)
    status = _status(decl, clean)
    if status is not None and decl.states is not None and status not in decl.states.initial:
        raise _refused_transition(decl, None, status)
    if decl.precheck is not None:
        decl.precheck(caller, None, clean)


def _create_at(
    caller: Caller, decl: ResourceType, a: Address, clean: dict[str, Any], claim: str | None
) -> Created:
    for attempt in range(RING_ATTEMPTS):
        try:
            stored = _write(caller, decl, a, clean, 1, None, LabelWrite.SET, claim)
        except TransactionCancelled as exc:
            if "patient" in exc.failed:
                raise _unknown_patient(decl) from None
            if (refused := _refused_reference(decl, exc.failed)) is not None:
                raise refused from None
            if "claim" in exc.failed and claim is not None:
                return Created(_claim_holder(caller, decl, claim), created=False)
            if "counter" in exc.failed and attempt < RING_ATTEMPTS - 1:
                continue  # a concurrent write took the chart slot: read and try again
            raise
        return Created(stored, created=True)
    raise AssertionError("unreachable")


def _new_address(tenant: str, decl: ResourceType, clean: dict[str, Any]) -> Address:
    """A new id: a ULID, or in a patient's chart `<patient id>.<ulid>`."""
    if decl.is_patient:
        rid = new_id()
        return Address(tenant, decl.name, rid, rid)
    if decl.compartment is not None:
        patient_id = _patient_named(decl, clean)
        marker = decl.variant.marker if decl.variant is not None else ""
        local = keys.compound_id(patient_id, new_id(), marker)
        return Address(tenant, decl.name, local, patient_id)
    return Address(tenant, decl.name, new_id(), None)


def _criteria_token(tenant: str, decl: ResourceType, criteria: dict[str, list[str]]) -> str:
    canonical = "&".join(f"{k}={v}" for k in sorted(criteria) for v in sorted(criteria[k]))
    return blind_index.token(
        blind_index.tenant_key(tenant), f"{decl.name}.if-none-exist", canonical
    )


def _claim_holder(caller: Caller, decl: ResourceType, claim: str) -> Stored:
    """The resource a concurrent conditional create with the same criteria made."""
    holder = resources.claimed(caller.tenant, decl.name, claim)
    a = address_of(caller.tenant, decl, holder) if holder else None
    stored = resources.read_current(a) if a else None
    if stored is None or stored.deleted:
        raise Conflict(
            Issue("conflict", "A concurrent create with the same criteria did not complete; "
                  "retry.", ["If-None-Exist"])
        )  # fmt: skip
    caller.touched(decl.name, a.resource_id, a.patient_id, stored.version)  # type: ignore[union-attr]
    return stored


def _conditional_matches(
    caller: Caller, decl: ResourceType, criteria: dict[str, list[str]]
) -> list[Stored]:
    if any(name.startswith("_") and name not in ("_id",) for name in criteria):
        raise Invalid(
            Issue("invalid", "If-None-Exist takes search criteria only.", ["If-None-Exist"])
        )
    query = search.parse(decl, criteria)
    if not query.criteria:
        raise Invalid(Issue("required", "If-None-Exist needs criteria.", ["If-None-Exist"]))
    query.count = 2
    found: list[Stored] = []
    cursor: str | None = None
    for _ in range(MAX_MATCH_SET // READ_PAGE):
        page, cursor = _candidates(caller.tenant, query, cursor, READ_PAGE)
        found.extend(s for s in page if s.resource and query.matches(s.resource))
        if len(found) > 1 or cursor is None:
            return found
    raise _too_costly(decl)


def parse_if_match(value: str) -> int:
    version = search.whole_number(value.strip().removeprefix("W/").strip('"'))
    if version is None:  # ASCII digits only: "²".isdigit() is True, int("²") fails
        raise Invalid(Issue("invalid", 'If-Match must be W/"<versionId>".', ["If-Match"]))
    return version


def _failure_of(decl: ResourceType, current: Stored | None, rid: str, expected: int) -> Exception:
    if current is None:
        return not_found(decl, rid)
    if current.deleted:
        return _gone(decl, rid)
    return PreconditionFailed(
        Issue(
            "conflict",
            f"Version {expected} is not current (current is {current.version}).",
            ["If-Match"],
        )
    )


class _LabelsDiffer(Exception):
    """The submitted labels are not the stored ones (and the caller may not change them)."""


def update(
    caller: Caller,
    decl: ResourceType,
    resource_id: str,
    body: dict[str, Any],
    if_match: str | None,
    may_label: bool = False,
) -> Stored:
    """With If-Match: one transaction, no read; the put is conditional on that
    version (412 when stale). Without: the current version is read (one GetItem)
    and the write is conditional on it; a concurrent write in between makes it
    read and try again, so the last writer wins, as the client asked. Tenants in
    EMR_IF_MATCH_REQUIRED_TENANTS get 428 without If-Match.

    Entries of tokens this version dropped are removed from the table stream
    (events/stream.py), conditionally, so a later version is never harmed.
    Without `may_label`, the write is also conditional on the submitted labels
    being the stored ones; when they are not, the stored ones are read (one
    GetItem) and the write is sent again with them (functions/engine/labels.py)."""
    a = _located(caller, decl, resource_id)
    if if_match is None and caller.tenant in api_settings().if_match_required:
        raise PreconditionRequired(
            Issue("required", 'Updates need If-Match: W/"<versionId>".', ["If-Match"])
        )
    expected = parse_if_match(if_match) if if_match is not None else None
    clean = validate_resource(decl.fhir_type, body, path_id=resource_id, rules=decl.rules)
    if decl.compartment is not None and _patient_named(decl, clean) != a.patient_id:
        raise Invalid(
            Issue(
                "invariant",
                f"{decl.compartment.element} cannot move to another patient: create a new "
                f"{decl.name} in that patient's chart.",
                [f"{decl.name}.{decl.compartment.element}"],
            )
        )
    attempts = 1 if expected is not None else BLIND_UPDATE_ATTEMPTS
    for attempt in range(attempts):
        stored_now: Stored | None = None
        version = expected
        if version is None or decl.guards or decl.precheck:
            stored_now = resources.read_current(a)
            if stored_now is None or stored_now.deleted:
                raise _failure_of(decl, stored_now, resource_id, expected or 0)
            version = stored_now.version if version is None else version
            _check_transition(decl, stored_now, _status(decl, clean))
        _check_change(caller, decl, stored_now, clean)
        try:
            return _update_at(caller, decl, a, clean, version, may_label)
        except PreconditionFailed:
            if expected is not None:
                raise
            if attempt == attempts - 1:
                raise Conflict(
                    Issue("conflict", f"{decl.name}/{resource_id} kept changing while it was "
                          "saved; read it again and retry.", [f"{decl.name}.meta.versionId"])
                ) from None  # fmt: skip
    raise AssertionError("unreachable")


def _check_change(
    caller: Caller, decl: ResourceType, stored: Stored | None, clean: dict[str, Any]
) -> None:
    for guard in decl.guards:
        guard(stored, clean)
    if decl.precheck is not None:
        decl.precheck(caller, stored, clean)


def _update_at(
    caller: Caller,
    decl: ResourceType,
    a: Address,
    clean: dict[str, Any],
    expected: int,
    may_label: bool,
) -> Stored:
    body = clean
    how = LabelWrite.SET if may_label else LabelWrite.UNCHANGED
    for _ in range(2):
        try:
            return _write(caller, decl, a, body, expected + 1, expected, how)
        except TransactionCancelled as exc:
            if "resource" in exc.failed or "history" in exc.failed:
                current = resources.read_current(a)
                if current is not None and current.version == expected and not current.deleted:
                    _check_transition(decl, current, _status(decl, body))  # 409 names it
                raise _failure_of(decl, current, a.resource_id, expected) from None
            if "patient" in exc.failed:
                raise _unknown_patient(decl) from None
            if (refused := _refused_reference(decl, exc.failed)) is not None:
                raise refused from None
            if "labels" in exc.failed and how is LabelWrite.UNCHANGED:
                body = labels.with_labels(clean, _stored_labels(decl, a, expected))
                how = LabelWrite.KEPT
                continue
            raise
    raise AssertionError("unreachable")


def _stored_labels(decl: ResourceType, a: Address, expected: int) -> list[dict[str, Any]]:
    """The labels of the current version, which must be `expected` (else 404/410/412)."""
    current = resources.read_current(a)
    if current is None or current.resource is None or current.version != expected:
        raise _failure_of(decl, current, a.resource_id, expected)
    return labels.of(current.resource)


def delete(caller: Caller, decl: ResourceType, resource_id: str) -> None:
    """Tombstone + history + removal of every search entry, in one transaction.

    The current item and the resource's entries are read first, entries an earlier
    update dropped and the stream has not yet tidied included: a deleted resource
    is never found by search."""
    a = _located(caller, decl, resource_id)
    current = resources.read_current(a)
    if current is None:
        raise not_found(decl, resource_id)
    if current.deleted:
        caller.touched(decl.name, resource_id, a.patient_id, current.version)
        return  # FHIR: deleting a deleted resource succeeds
    for guard in decl.guards:
        guard(current, None)
    _check_transition(decl, current, None)
    deletable = _macs(a, decl, decl.states.deletable) if decl.states is not None else None
    entries = sorted(resources.entry_tokens(a))
    version = current.version + 1
    uow = UnitOfWork()
    resources.stage_version(
        uow, NewVersion(a, version, iso(now()), decl.data_class, None), current.version, deletable
    )
    in_tx = set(entries[:MAX_ENTRY_DELETES_IN_TX])
    resources.stage_entry_removal(uow, a, in_tx)
    _stage_chart(uow, decl, a, None)
    caller.touched(decl.name, resource_id, a.patient_id, version)
    caller.stage_audit(uow, 204)
    _stage_event(uow, caller, decl, Change.DELETED, a, version)
    try:
        _commit(decl, uow, caller.token())
    except TransactionCancelled:
        now_stored = resources.read_current(a)
        if now_stored is not None and now_stored.version == current.version:
            _check_transition(decl, now_stored, None)
        raise _failure_of(decl, now_stored, resource_id, current.version) from None
    caller.committed()
    rest = set(entries) - in_tx
    if rest:  # more stale entries than one transaction holds: same conditional tidy
        resources.remove_stale_entries(a, rest, below_version=version)


# ----------------------------------------------------------------- reads


def read(caller: Caller, decl: ResourceType, resource_id: str) -> Stored:
    a = _located(caller, decl, resource_id)
    stored = resources.read_current(a)
    if stored is None:
        raise not_found(decl, resource_id)
    caller.touched(decl.name, resource_id, a.patient_id, stored.version)
    if stored.deleted:
        raise _gone(decl, resource_id)
    return stored


def read_version(caller: Caller, decl: ResourceType, resource_id: str, version_id: str) -> Stored:
    a = _located(caller, decl, resource_id)
    version = search.whole_number(version_id)
    if version is None:
        raise not_found(decl, resource_id)
    stored = resources.read_version(a, version)
    where = [f"{decl.name}.meta.versionId"]
    if stored is None:
        raise NotFound(
            Issue("not-found", f"{decl.name}/{resource_id} has no version {version_id}.", where)
        )
    caller.touched(decl.name, resource_id, a.patient_id, stored.version)
    if stored.deleted:
        raise Gone(Issue("deleted", f"Version {version_id} records the deletion.", where))
    return stored


INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_since(decl: ResourceType, value: str | None) -> str | None:
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
                [f"{decl.name}.history._since"],
            )
        )
    return iso(moment)


def parse_before_version(decl: ResourceType, value: str | None) -> int | None:
    """History's `_before_version` (from the server's own next links): a version number."""
    if value is None:
        return None
    version = search.whole_number(value)
    if version is None or version < 1:
        raise Invalid(
            Issue(
                "invalid",
                "_before_version must be a version number (1 to 9 digits).",
                [f"{decl.name}.history._before_version"],
            )
        )
    return version


def history(
    caller: Caller,
    decl: ResourceType,
    resource_id: str,
    count: int,
    before: int | None,
    since: str | None = None,
) -> tuple[list[Stored], int | None]:
    """A page of versions, newest first; with `since`, only versions updated at or
    after it (the page ends, with no next link, at the first older one)."""
    a = _located(caller, decl, resource_id)
    items, more = resources.history_page(a, max(count, 1), before)
    if not items and before is None:
        raise not_found(decl, resource_id)
    if since is not None:
        recent = [i for i in items if i.last_updated >= since]
        more = more and len(recent) == len(items)
        items = recent
    caller.audit.result_count = len(items)
    next_before = items[-1].version if more and items else None
    return items, next_before


# ----------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchResult:
    found: list[Stored]
    next_cursor: str | None = None
    next_offset: int | None = None
    total: int | None = None


def _too_costly(decl: ResourceType) -> Invalid:
    return Invalid(
        Issue(
            "too-costly",
            f"More than {MAX_MATCH_SET} candidates to sort or count: narrow the search "
            "(e.g. by patient), or page without _sort/_total.",
            [f"{decl.name}.search"],
        )
    )


def _cursor_address(tenant: str, decl: ResourceType, cursor: str) -> Address:
    a = address_of(tenant, decl, cursor)
    if a is None:
        raise Invalid(Issue("invalid", "_cursor is not valid.", [f"{decl.name}.search._cursor"]))
    return a


def _candidates(
    tenant: str, query: Query, cursor: str | None, count: int
) -> tuple[list[Stored], str | None]:
    """One page of candidates from the one Query the search leads with, with
    token filters applied by DynamoDB; every criterion is then checked in memory."""
    decl = query.decl
    if query.ids is not None:
        wanted = [a for i in query.ids if (a := address_of(tenant, decl, i)) is not None]
        found = resources.read_many(wanted[:MAX_MATCH_SET]) if wanted else {}
        return [s for s in found.values() if not s.deleted], None
    has_terms = any(a.terms for c in query.criteria for a in c.alternatives)
    key = blind_index.tenant_key(tenant) if has_terms else b""
    if cursor is not None:
        _cursor_address(tenant, decl, cursor)
    if query.chart is not None:
        if not keys.valid_id(query.chart):
            return [], None
        groups = query.filter_groups(key, None)
        page = resources.query_chart(tenant, query.chart, decl.name, count, cursor, groups)
        return page.found, page.last_id
    leading = query.leading_term()
    groups = query.filter_groups(key, leading)
    lead_token = blind_index.token(key, *leading) if leading else None
    page = resources.query_index(
        tenant,
        lambda rid: _cursor_address(tenant, decl, rid),
        decl.name,
        lead_token,
        count,
        cursor,
        groups,
    )
    return page.found, page.last_id


def search_resources(
    caller: Caller, decl: ResourceType, params: dict[str, list[str]]
) -> SearchResult:
    """One Query per page: the chart (`?patient=`), a blind-index partition, or the
    tenant's list of the type. Sorting and totals read the whole match set (at most
    MAX_MATCH_SET candidates) and page through it by offset."""
    query = search.parse(decl, params)
    caller.audit.resource_type, caller.audit.query_params = decl.name, query.names
    if query.chart is not None:  # the record goes to that patient's trail, even with no match
        caller.touched(decl.name, "", query.chart)
    result = _run(caller.tenant, query)
    patients = [s.address.patient_id for s in result.found if s.address.patient_id]
    caller.returned(decl.name, len(result.found), patients)
    return result


def find(tenant: str, decl: ResourceType, params: dict[str, list[str]]) -> SearchResult:
    """A search made by the system itself, inside a request audited for what it is
    (e.g. finding the signed-in user's Practitioner): it adds nothing to the
    request's audit record. Never for PHI on a client's behalf."""
    return _run(tenant, search.parse(decl, params))


def _run(tenant: str, query: Query) -> SearchResult:
    if query.needs_match_set:
        return _whole_match_set(tenant, query)
    found, cursor = _candidates(tenant, query, query.cursor, query.count)
    matched = [s for s in found if s.resource is not None and query.matches(s.resource)]
    total = len(matched) if cursor is None and query.cursor is None else None
    return SearchResult(matched, next_cursor=cursor, total=total)


def _whole_match_set(tenant: str, query: Query) -> SearchResult:
    matched: list[Stored] = []
    read = 0
    parts = [replace(query, chart=c, charts=None) for c in query.charts or []] or [query]
    for part in parts:
        cursor: str | None = None
        while True:
            page, cursor = _candidates(tenant, part, cursor, READ_PAGE)
            read += len(page)
            matched.extend(s for s in page if s.resource and query.matches(s.resource))
            if cursor is None:
                break
            if read >= MAX_MATCH_SET:
                raise _too_costly(query.decl)
    if query.sort:
        matched.sort(key=lambda s: search.sort_key(query, s.resource or {}))
    total = len(matched)
    if query.summary_count or query.count == 0:
        return SearchResult([], total=total)
    window = matched[query.offset : query.offset + query.count]
    after = query.offset + query.count
    return SearchResult(window, next_offset=after if after < total else None, total=total)
