"""What signing a plan records: the signed body's digest and its Provenance.

A plan is a structured resource, not a text: the signature covers the signed
version as stored, without `meta` (versionId, lastUpdated and security labels
change without changing what was agreed), as canonical JSON: keys sorted at every
level, no white space (separators `,` and `:`), non-ASCII characters as
themselves, UTF-8. Anyone can check a signature later: vread the version the
Provenance targets, drop `meta`, serialise the same way and compare the SHA-256.

The Provenance follows the one of a signed note (functions/notes/signing.py):
activity LA (legally authenticated), the author's ASTM E1762 signature type,
`signature[0].data` the base64 of the 32-byte digest, the hex digest repeated in
the SHA256_EXTENSION extension; `targetFormat` says what was hashed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from functions.common.errors import Conflict, Issue
from functions.notes.signing import provenance

SIGNED_FORMAT = "application/fhir+json"


def canonical_json(body: dict[str, Any]) -> bytes:
    """The bytes a plan's signature covers: the body without `meta`, canonical JSON."""
    signed = {k: v for k, v in body.items() if k != "meta"}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def plan_sha256(body: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of a plan version."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def plan_provenance(
    plan_reference_with_version: str, signer_reference: str, at: str, sha256_hex: str
) -> dict[str, Any]:
    """The Provenance of the author's signature on one version of a plan: as a note's,
    the digest taken over the plan's canonical JSON."""
    return provenance(plan_reference_with_version, signer_reference, at, "author", sha256_hex,
                      SIGNED_FORMAT)  # fmt: skip


LOCKED = "active"
_STATUS_ONLY = ("meta", "status", "id", "resourceType")


def _content(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _STATUS_ONLY}


def check_unchanged(stored: dict[str, Any] | None, body: dict[str, Any] | None) -> None:
    """A signed (active) plan is locked: an update may change its status and nothing
    else (409 naming the plan); a change of content is a new plan that replaces it."""
    if stored is None or body is None or stored.get("status") != LOCKED:
        return
    if _content(stored) != _content(body):
        raise Conflict(
            Issue("business-rule", "An active plan is signed and locked: an update may only "
                  "change its status (revoked, completed, entered-in-error); revise it with a "
                  "new CarePlan whose replaces names it.", ["CarePlan"])
        )  # fmt: skip
