"""Who a signed-in user is in the record: their Practitioner.

Each user of a tenant resolves to the one Practitioner of that tenant whose
identifier is `USER_SYSTEM|<username>` (the Cognito username). Notes, orders and
signatures of later workflows name that Practitioner. An administrator creates it
(the local stack seeds one per demo user); a user without one resolves to None.
"""

from __future__ import annotations

from functions.common.caller import Caller
from functions.common.errors import Conflict, Issue
from functions.engine import registry, service
from models.resources import Stored

USER_SYSTEM = "https://emr.example/fhir/sid/user"


MEMO = "directory.practitioner"  # the caller's Practitioner, looked up once a request


def practitioner_for(caller: Caller) -> Stored | None:
    """The caller's Practitioner (one Query on the identifier's blind-index entry, once
    a request: remembered on the caller), None when there is none; two is a
    directory error (409)."""
    if MEMO not in caller.memo:
        caller.memo[MEMO] = _lookup(caller)
    found: Stored | None = caller.memo[MEMO]
    return found


def _lookup(caller: Caller) -> Stored | None:
    username = caller.principal.username
    if not username:
        return None
    decl = registry.require("Practitioner")
    criteria = {"identifier": [f"{USER_SYSTEM}|{username}"], "_count": ["2"]}
    found = service.find(caller.tenant, decl, criteria).found
    if len(found) > 1:
        raise Conflict(
            Issue("duplicate", "More than one Practitioner claims this user.", ["Practitioner"])
        )
    return found[0] if found else None
