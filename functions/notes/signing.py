"""What signing a note writes, as pure functions: the signed and co-signed versions
of the note, its chart header and the Provenance that records each signature.

Signing locks the note (docStatus `final`) under its author's name. The author of
a note may be a trainee: a Practitioner with the extension SUPERVISOR_URL naming
their supervisor. A trainee's signed note carries AWAITING_COSIGN_URL naming that
supervisor until the supervisor co-signs; it counts as final only then. The
chart's headers are found again by the note's id (functions/notes/service.py).
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any, Literal

from functions.notes.declarations import AWAITING_COSIGN_URL
from functions.notes.documents import CONTENT_TYPE, moment

_ID = r"[A-Za-z0-9\-.]{1,64}"
SUPERVISOR_URL = "https://emr.example/fhir/StructureDefinition/supervisor"
_PRACTITIONER = re.compile(rf"Practitioner/({_ID})")
_ENCOUNTER = re.compile(rf"(?:.*/)?Encounter/({_ID})")


def _extension(body: dict[str, Any], url: str) -> dict[str, Any] | None:
    found = [e for e in body.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]
    return found[0] if found else None


def _practitioner_reference(extension: dict[str, Any] | None) -> str | None:
    value = extension.get("valueReference") if extension else None
    reference = value.get("reference") if isinstance(value, dict) else None
    match = _PRACTITIONER.fullmatch(reference) if isinstance(reference, str) else None
    return f"Practitioner/{match.group(1)}" if match else None


def supervisor_of(practitioner: dict[str, Any]) -> str | None:
    """`Practitioner/<id>` of a trainee's supervisor, None for anyone else."""
    return _practitioner_reference(_extension(practitioner, SUPERVISOR_URL))


def awaiting_cosign(note: dict[str, Any]) -> str | None:
    """`Practitioner/<id>` of the supervisor whose co-signature the note awaits."""
    return _practitioner_reference(_extension(note, AWAITING_COSIGN_URL))


def authors(note: dict[str, Any]) -> list[str]:
    """The `author` references of a note, as written."""
    found = note.get("author")
    listed = found if isinstance(found, list) else []
    refs = [a.get("reference") for a in listed if isinstance(a, dict)]
    return [r for r in refs if isinstance(r, str)]


def _without(body: dict[str, Any], *urls: str) -> list[dict[str, Any]]:
    kept = [e for e in body.get("extension") or [] if isinstance(e, dict)]
    return [e for e in kept if e.get("url") not in urls]


def signed_note(
    note: dict[str, Any], signer: str, at: str, supervisor: str | None
) -> dict[str, Any]:
    """The note's signed version: docStatus final, `date` the signing time when it had
    none; the author as `authenticator`, or (a trainee) the awaiting-cosign extension
    naming the supervisor."""
    out = {k: copy.deepcopy(v) for k, v in note.items() if k != "meta"}
    out["docStatus"] = "final"
    out.setdefault("date", at)
    extensions = _without(out, AWAITING_COSIGN_URL)
    if supervisor is not None:
        extensions.append({"url": AWAITING_COSIGN_URL, "valueReference": {"reference": supervisor}})
        out.pop("authenticator", None)
    else:
        out["authenticator"] = {"reference": signer}
    if extensions:
        out["extension"] = extensions
    else:
        out.pop("extension", None)
    return out


def cosigned_note(note: dict[str, Any], supervisor: str) -> dict[str, Any]:
    """The co-signed version: no longer awaiting, the supervisor as `authenticator`."""
    out = {k: copy.deepcopy(v) for k, v in note.items() if k != "meta"}
    extensions = _without(out, AWAITING_COSIGN_URL)
    if extensions:
        out["extension"] = extensions
    else:
        out.pop("extension", None)
    out["authenticator"] = {"reference": supervisor}
    return out


def _codes(concept: Any) -> dict[str, Any]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    first = codings[0] if isinstance(codings, list) and codings else None
    if not isinstance(first, dict):
        return {}
    return {k: first[k] for k in ("system", "code", "display") if isinstance(first.get(k), str)}


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


def encounter_id(note: dict[str, Any]) -> str | None:
    """The id of the note's first `context.encounter` (for its events), if any."""
    encounters = (note.get("context") or {}).get("encounter") or []
    reference = _reference(encounters[0]) if encounters else None
    match = _ENCOUNTER.fullmatch(reference) if reference else None
    return match.group(1) if match else None


def header(note_id: str, version: int, note: dict[str, Any]) -> dict[str, Any]:
    """The note's chart header (docs/adr/0008): header fields only, never its text.
    `awaitingCosign`: a trainee's note that counts as final only once co-signed."""
    encounters = (note.get("context") or {}).get("encounter") or []
    return {
        "resourceType": "DocumentReference",
        "id": note_id,
        "version": version,
        "date": note.get("date"),
        "docStatus": note.get("docStatus"),
        "type": _codes(note.get("type")),
        "author": next(iter(authors(note)), None),
        "encounter": _reference(encounters[0]) if encounters else None,
        "authenticator": _reference(note.get("authenticator")),
        "awaitingCosign": awaiting_cosign(note) is not None,
        "addendumTo": _addendum_target(note),
    }


def _addendum_target(note: dict[str, Any]) -> str | None:
    for relation in note.get("relatesTo") or []:
        if isinstance(relation, dict) and relation.get("code") == "appends":
            return _reference(relation.get("target"))
    return None


PARTICIPANT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DOCUMENT_COMPLETION = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion"
SIGNATURE_SYSTEM = "urn:iso-astm:E1762-95:2013"
SIGNATURE_TYPES = {
    "author": ("1.2.840.10065.1.12.1.1", "Author's Signature"),
    "verifier": ("1.2.840.10065.1.12.1.5", "Verification Signature"),
}
SHA256_EXTENSION = "https://emr.example/fhir/StructureDefinition/content-sha256"
_VERSIONED_NOTE = re.compile(rf"(DocumentReference|CarePlan)/{_ID}/_history/[0-9]{{1,18}}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")


def _check_signing(note_reference: str, role: str, sha256_hex: str, at: str) -> None:
    """Programming errors (the use case builds these values), not client input."""
    if not _VERSIONED_NOTE.fullmatch(note_reference):
        raise ValueError("The target must be DocumentReference|CarePlan/<id>/_history/<v>.")
    if role not in SIGNATURE_TYPES:
        raise ValueError("The role is author or verifier.")
    if not _HEX_SHA256.fullmatch(sha256_hex):
        raise ValueError("The digest must be 64 lowercase hexadecimal digits.")
    if not _INSTANT.fullmatch(at):
        raise ValueError("The time must be an instant with its time zone.")
    moment(at)  # a day that exists (month 13 raises ValueError)


def provenance(
    note_reference_with_version: str,
    signer_reference: str,
    at: str,
    role: Literal["author", "verifier"],
    sha256_hex: str,
    target_format: str = CONTENT_TYPE,
) -> dict[str, Any]:
    """The Provenance that records a signature on one version of a note (or of a plan:
    `target_format` says what the digest was taken over).

    `activity` is LA (legally authenticated) of v3-DocumentCompletion, a code of R4's
    ProvenanceActivityType value set: "signed manually or electronically by the
    individual who is legally responsible for that document". That is what a signature
    and a supervisor's co-signature are; v3-DataOperation UPDATE would only say that the
    record changed, which every version says. Who signed in which capacity is in
    `agent[0].type` (author or verifier) and in the ASTM E1762 signature type.

    `signature[0].data` is the base64 of the 32-byte SHA-256 digest of the note's text
    bytes (not a cryptographic signature: the digest lets anyone check later that the
    text is the one signed); the extension SHA256_EXTENSION repeats it in hex.
    """
    _check_signing(note_reference_with_version, role, sha256_hex, at)
    code, display = SIGNATURE_TYPES[role]
    who = {"reference": signer_reference}
    participant = {"system": PARTICIPANT_SYSTEM, "code": role, "display": role.capitalize()}
    activity = {"system": DOCUMENT_COMPLETION, "code": "LA", "display": "legally authenticated"}
    return {
        "resourceType": "Provenance",
        "extension": [{"url": SHA256_EXTENSION, "valueString": sha256_hex}],
        "target": [{"reference": note_reference_with_version}],
        "occurredDateTime": at,
        "recorded": at,
        "activity": {"coding": [activity]},
        "agent": [{"type": {"coding": [participant]}, "who": who}],
        "signature": [
            {
                "type": [{"system": SIGNATURE_SYSTEM, "code": code, "display": display}],
                "when": at,
                "who": dict(who),
                "targetFormat": target_format,
                "data": base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii"),
            }
        ],
    }
