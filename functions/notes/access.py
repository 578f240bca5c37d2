"""Who sees which note, and how much of it: after-load rules on top of the policy table.

Psychotherapy notes (45 CFR 164.501; data class `psychotherapy`, the variant in
functions/notes/declarations.py) and their signatures (Provenance) are shown only
to
* the note's author: the signed-in user's Practitioner (the directory's
  `USER_SYSTEM|<username>` identifier, functions/engine/directory.py) is the
  note's `author` (for a signature: the author of the note it signs), or
* a principal holding one of the roles the clinic grants in its settings
  (`psychotherapy_roles`, functions/common/tenant_settings.py).
Anyone else is told nothing: a read answers 404, a search leaves the note out
(the `psychotherapy_view` hides it). Whoever may see it must say why: every
request that reaches a psychotherapy note carries `X-Purpose-Of-Use` (400 naming
the header otherwise, checked after access so that a 400 never tells a stranger
the note exists); the purpose is in the request's audit record.

Clinical notes: a principal whose only note role is biller sees signed notes only
(drafts are hidden) and never their text: `content[].attachment.data` is taken out
and `meta.tag` says SUBSETTED. Care roles and care coordinators see whole notes.

The checks get the principal; the request's caller (its purpose, and a per-request
memo of the lookups: the user's Practitioner, the clinic's settings, the authors
of signed notes) comes from `functions.common.caller.current_for`. Without a
request being served for that principal, psychotherapy notes stay hidden.
"""

from __future__ import annotations

import copy
from typing import Any

from functions.common.authz import Role, register_loaded_check, register_view
from functions.common.caller import PURPOSE_HEADER, Caller, current_for
from functions.common.errors import Invalid, Issue
from functions.common.principal import Principal
from functions.engine import values as v
from functions.notes.declarations import DOCUMENT_REFERENCE, PSYCHOTHERAPY_NOTE
from functions.notes.documents import signed

PSYCHOTHERAPY_CLASS = PSYCHOTHERAPY_NOTE.data_class
CLINICAL_NOTE_CLASS = DOCUMENT_REFERENCE.data_class
NOTE_TYPE = DOCUMENT_REFERENCE.fhir_type  # "DocumentReference"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
# Roles that see a clinical note whole; a biller without one of them sees the summary.
WHOLE_NOTE_ROLES = frozenset({Role.CLINICIAN, Role.PRESCRIBER, Role.SUPERVISOR,
                              Role.CARE_COORDINATOR})  # fmt: skip


# ----------------------------------------------------------------- psychotherapy notes


def _me(caller: Caller) -> str | None:
    """`Practitioner/<id>` of the signed-in user (looked up once a request)."""
    from functions.engine.directory import practitioner_for

    found = practitioner_for(caller)
    return f"Practitioner/{found.address.resource_id}" if found is not None else None


def _granted(caller: Caller) -> bool:
    """The principal holds a role the clinic grants (settings read once per request)."""
    if "psychotherapy_roles" not in caller.memo:
        from functions.common import tenant_settings

        caller.memo["psychotherapy_roles"] = tenant_settings.get(caller.tenant).psychotherapy_roles
    roles: frozenset[str] = caller.memo["psychotherapy_roles"]
    return any(role in roles for role in caller.principal.roles)


def _note_authors(caller: Caller, note_id: str) -> list[str]:
    """The authors of the psychotherapy note a signature targets (its current version,
    one consistent GetItem per note and request; none when it does not exist)."""
    authors: dict[str, list[str]] = caller.memo.setdefault("note_authors", {})
    if note_id not in authors:
        from functions.engine.service import address_of
        from models.resources import read_current

        where = address_of(caller.tenant, PSYCHOTHERAPY_NOTE, note_id)
        stored = read_current(where) if where is not None else None
        body = stored.resource if stored is not None else None
        authors[note_id] = v.references("author")(body) if body else []
    return authors[note_id]


def _authors(caller: Caller, resource_type: str, resource: dict[str, Any]) -> list[str]:
    if resource_type == NOTE_TYPE:
        return list(v.references("author")(resource))
    targets = [t.partition("/")[2] for t in v.references("target")(resource)
               if t.startswith(f"{NOTE_TYPE}/")]  # fmt: skip
    return [a for note_id in targets for a in _note_authors(caller, note_id)]


def may_see_psychotherapy(caller: Caller, resource_type: str, resource: dict[str, Any]) -> bool:
    """The author (of the note, or of the note a signature signs) or a granted role."""
    version = (resource.get("meta") or {}).get("versionId")
    key = f"{resource_type}/{resource.get('id')}/_history/{version}"
    decided: dict[str, bool] = caller.memo.setdefault("psychotherapy_access", {})
    if key not in decided:
        decided[key] = _granted(caller) or _is_author(caller, resource_type, resource)
    return decided[key]


def _is_author(caller: Caller, resource_type: str, resource: dict[str, Any]) -> bool:
    me = _me(caller)
    return me is not None and me in _authors(caller, resource_type, resource)


def psychotherapy_purpose(
    principal: Principal, resource_type: str, data_class: str, resource: dict[str, Any]
) -> None:
    """After-load check: whoever may see a psychotherapy note must have declared a
    purpose of use. Those who may not see it pass here and are hidden by the view
    (a read: 404; a search: left out), so that no answer differs for them."""
    if data_class != PSYCHOTHERAPY_CLASS:
        return
    caller = current_for(principal)
    if caller is None or not may_see_psychotherapy(caller, resource_type, resource):
        return
    if caller.purpose_of_use is None:
        raise Invalid(
            Issue(
                "required",
                f"{PURPOSE_HEADER} is required to read psychotherapy notes.",
                [PURPOSE_HEADER],
            )
        )


def psychotherapy_view(
    principal: Principal, resource_type: str, data_class: str, resource: dict[str, Any]
) -> dict[str, Any] | None:
    """Psychotherapy notes and their signatures: as they are, or not at all."""
    if data_class != PSYCHOTHERAPY_CLASS:
        return resource
    caller = current_for(principal)
    if caller is None or not may_see_psychotherapy(caller, resource_type, resource):
        return None
    return resource


# ----------------------------------------------------------------- clinical notes


def _summary(resource: dict[str, Any]) -> dict[str, Any]:
    """The note without its text, tagged SUBSETTED (FHIR: an incomplete copy)."""
    out = copy.deepcopy(resource)
    for content in out.get("content") or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict):
            attachment.pop("data", None)
    meta = out.setdefault("meta", {})
    tags = [t for t in meta.get("tag") or [] if not (
        isinstance(t, dict) and (t.get("system"), t.get("code")) ==
        (SUBSETTED["system"], SUBSETTED["code"]))]  # fmt: skip
    meta["tag"] = [*tags, dict(SUBSETTED)]
    return out


def billing_view(
    principal: Principal, resource_type: str, data_class: str, resource: dict[str, Any]
) -> dict[str, Any] | None:
    """A biller (without a role that reads notes whole) sees signed notes, no text."""
    if resource_type != NOTE_TYPE or data_class != CLINICAL_NOTE_CLASS:
        return resource
    if Role.BILLER not in principal.roles or WHOLE_NOTE_ROLES & principal.roles:
        return resource
    return _summary(resource) if signed(resource) else None


register_loaded_check(psychotherapy_purpose)
register_view(psychotherapy_view)
register_view(billing_view)
