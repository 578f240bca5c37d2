"""The clinical note (an R4 DocumentReference): its text, its rules, what signing records.

The text is `content[0].attachment.data`: base64 of UTF-8, contentType
`text/plain; charset=utf-8`. Psychotherapy notes (45 CFR 164.501) carry the code
`psychotherapy-note` of NOTE_CLASS_SYSTEM in `category`; every other note is a
`clinical-note`. Diagnostics name FHIR elements, never the note's text or ids.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from functions.common.errors import Invalid, Issue, PayloadTooLarge

ROOT = "DocumentReference"
DATA = f"{ROOT}.content[0].attachment.data"
CONTENT_TYPE = "text/plain; charset=utf-8"
MAX_NOTE_CHARS = 100_000
# The UTF-8 bytes a note's text may take: its base64 (4/3 of it, 253,336 characters)
# plus the note's other elements fits the request body limit (EMR_MAX_BODY_BYTES,
# 256 KiB), and the stored version stays far under DynamoDB's 400 KB item. Typical
# clinical text (ASCII with some accents) takes 1.0-1.1 bytes a character, so
# 100,000 characters of it fit; 100,000 emoji (400,000 bytes) do not.
MAX_NOTE_BYTES = 190_000
NOTE_CLASS_SYSTEM = "https://emr.example/fhir/CodeSystem/note-class"
NoteClass = Literal["clinical-note", "psychotherapy-note"]
CLINICAL_NOTE: NoteClass = "clinical-note"
PSYCHOTHERAPY_NOTE: NoteClass = "psychotherapy-note"
NOTE_CLASSES = (CLINICAL_NOTE, PSYCHOTHERAPY_NOTE)
DOC_STATUS = ("preliminary", "final", "amended")
STATUS = ("current", "superseded", "entered-in-error")
SIGNED_DOC_STATUS = ("final", "amended")
UNSUPPORTED_RELATIONS = ("replaces", "transforms", "signs")

_ID = r"[A-Za-z0-9\-.]{1,64}"
_NOTE_REFERENCE = re.compile(rf"DocumentReference/({_ID})")
_WHITESPACE = re.compile(r"[ \t\r\n]+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_PLAIN_UTF8 = re.compile(r'text/plain\s*;\s*charset\s*=\s*"?utf-8"?\s*', re.IGNORECASE)


def _note_class_codes(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, code) of every note-class coding in `category`."""
    found = []
    categories = body.get("category")
    for i, concept in enumerate(categories if isinstance(categories, list) else []):
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for j, coding in enumerate(codings if isinstance(codings, list) else []):
            if isinstance(coding, dict) and coding.get("system") == NOTE_CLASS_SYSTEM:
                found.append((f"{ROOT}.category[{i}].coding[{j}].code", coding.get("code")))
    return found


def note_class(body: dict[str, Any]) -> NoteClass:
    """`psychotherapy-note` when a category says so, else `clinical-note` (the default)."""
    codes = [code for _, code in _note_class_codes(body)]
    return PSYCHOTHERAPY_NOTE if PSYCHOTHERAPY_NOTE in codes else CLINICAL_NOTE


def _attachment(body: dict[str, Any]) -> dict[str, Any] | None:
    content = body.get("content")
    first = content[0] if isinstance(content, list) and content else None
    attachment = first.get("attachment") if isinstance(first, dict) else None
    return attachment if isinstance(attachment, dict) else None


def _note_bytes(body: dict[str, Any]) -> bytes:
    """The decoded attachment data (whitespace between base64 groups is allowed)."""
    attachment = _attachment(body)
    data = attachment.get("data") if attachment else None
    if not isinstance(data, str):
        raise Invalid(Issue("required", "The note's text (base64 of UTF-8) is required.", [DATA]))
    compact = _WHITESPACE.sub("", data)
    if not _BASE64.fullmatch(compact):
        raise Invalid(Issue("value", "The note's text is not base64.", [DATA]))
    return base64.b64decode(compact, validate=True)


def note_text(body: dict[str, Any]) -> str:
    """The note's text; `Invalid` naming the data when it is not base64 of UTF-8."""
    try:
        return _note_bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(Issue("value", "The note's text is not UTF-8.", [DATA])) from None


def with_text(body: dict[str, Any], text: str) -> dict[str, Any]:
    """A copy of the note whose only content is `text` (other attachment fields kept).

    `url`, `size` and `hash` are dropped: they described the previous text.
    """
    out = copy.deepcopy(body)
    old = _attachment(body) or {}
    kept = {k: v for k, v in old.items() if k not in ("data", "url", "size", "hash")}
    attachment = {**kept, "contentType": CONTENT_TYPE}
    attachment["data"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    content = body.get("content")
    first = content[0] if isinstance(content, list) and content else None
    entry = {k: v for k, v in first.items() if k != "attachment"} if isinstance(first, dict) else {}
    out["content"] = [{**copy.deepcopy(entry), "attachment": attachment}]
    return out


def _content_issues(body: dict[str, Any]) -> list[Issue]:
    content = body.get("content")
    if not isinstance(content, list) or len(content) != 1:
        message = "A note has exactly one content entry (its text)."
        return [Issue("value", message, [f"{ROOT}.content"])]
    attachment = _attachment(body)
    if attachment is None:
        return [Issue("required", "The content needs an attachment.", [f"{ROOT}.content[0]"])]
    where = f"{ROOT}.content[0].attachment.contentType"
    content_type = attachment.get("contentType")
    if not isinstance(content_type, str) or not _PLAIN_UTF8.fullmatch(content_type):
        return [Issue("value", f"The contentType must be {CONTENT_TYPE}.", [where])]
    return _text_issues(body)


def _text_issues(body: dict[str, Any]) -> list[Issue]:
    try:
        text = note_text(body)
    except Invalid as exc:
        return exc.issues
    if len(text) > MAX_NOTE_CHARS:
        message = f"The note's text is longer than {MAX_NOTE_CHARS:,} characters."
        raise PayloadTooLarge(Issue("too-costly", message, [DATA]))
    if len(text.encode("utf-8")) > MAX_NOTE_BYTES:
        message = (
            f"The note's text takes more than {MAX_NOTE_BYTES:,} bytes of UTF-8 (at most "
            f"{MAX_NOTE_CHARS:,} characters and {MAX_NOTE_BYTES:,} bytes)."
        )
        raise PayloadTooLarge(Issue("too-costly", message, [DATA]))
    return []


def _required(body: dict[str, Any], element: str, what: str) -> list[Issue]:
    if body.get(element) in (None, "", {}, []):
        return [Issue("required", f"A note needs {what} ({element}).", [f"{ROOT}.{element}"])]
    return []


def _one_of(body: dict[str, Any], element: str, allowed: tuple[str, ...]) -> list[Issue]:
    value = body.get(element)
    if value is None or value in allowed:
        return []
    message = f"Unknown {element}; one of: {', '.join(allowed)}."
    return [Issue("code-invalid", message, [f"{ROOT}.{element}"])]


def _relation_issues(relation: Any, path: str) -> list[Issue]:
    if not isinstance(relation, dict):
        return [Issue("structure", "A relatesTo entry is an object.", [path])]
    code = relation.get("code")
    if code in UNSUPPORTED_RELATIONS:
        message = "Only addenda (appends) are supported; not replaces, transforms or signs."
        return [Issue("not-supported", message, [f"{path}.code"])]
    if code != "appends":
        return [Issue("code-invalid", "The relatesTo code must be appends.", [f"{path}.code"])]
    target = relation.get("target")
    reference = target.get("reference") if isinstance(target, dict) else None
    if not isinstance(reference, str) or not _NOTE_REFERENCE.fullmatch(reference):
        message = "An addendum's target must be a reference DocumentReference/<id>."
        return [Issue("value", message, [f"{path}.target.reference"])]
    return []


def _relates_to_issues(body: dict[str, Any]) -> list[Issue]:
    relations = body.get("relatesTo")
    if relations is None:
        return []
    where = f"{ROOT}.relatesTo"
    if not isinstance(relations, list):
        return [Issue("structure", "relatesTo is an array.", [where])]
    issues: list[Issue] = []
    for i, relation in enumerate(relations):
        issues += _relation_issues(relation, f"{where}[{i}]")
    appends = [r for r in relations if isinstance(r, dict) and r.get("code") == "appends"]
    if len(appends) > 1:
        issues.append(Issue("value", "An addendum appends to one note only.", [where]))
    return issues


def _class_issues(body: dict[str, Any]) -> list[Issue]:
    found = _note_class_codes(body)
    issues = [
        Issue("code-invalid", f"Unknown note class; one of: {', '.join(NOTE_CLASSES)}.", [path])
        for path, code in found
        if code not in NOTE_CLASSES
    ]
    if len({code for _, code in found if code in NOTE_CLASSES}) > 1:
        message = "A note is either a clinical note or a psychotherapy note, not both."
        issues.append(Issue("value", message, [f"{ROOT}.category"]))
    return issues


def note_rules(body: dict[str, Any]) -> list[Issue]:
    """The note's own rules (a pure check); `PayloadTooLarge` for a text over the limit."""
    return (
        _content_issues(body)
        + _required(body, "subject", "a subject (the Patient)")
        + _required(body, "docStatus", "a docStatus")
        + _one_of(body, "docStatus", DOC_STATUS)
        + _one_of(body, "status", STATUS)
        + _class_issues(body)
        + _relates_to_issues(body)
    )


def content_sha256(body: dict[str, Any]) -> str:
    """Hex SHA-256 of the decoded text bytes: what a signature covers."""
    return hashlib.sha256(_note_bytes(body)).hexdigest()


def is_addendum(body: dict[str, Any]) -> str | None:
    """The id of the note this one appends to, or None."""
    relations = body.get("relatesTo")
    for relation in relations if isinstance(relations, list) else []:
        if not isinstance(relation, dict) or relation.get("code") != "appends":
            continue
        target = relation.get("target")
        reference = target.get("reference") if isinstance(target, dict) else None
        match = _NOTE_REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match:
            return match.group(1)
    return None


def signed(body: dict[str, Any]) -> bool:
    """Signed by its author: docStatus final or amended."""
    return body.get("docStatus") in SIGNED_DOC_STATUS


def cosigned(body: dict[str, Any]) -> bool:
    """A verifier (e.g. a supervisor) is recorded as the note's `authenticator`."""
    authenticator = body.get("authenticator")
    return isinstance(authenticator, dict) and bool(authenticator.get("reference"))


def needs_cosign(body: dict[str, Any], author_supervised: bool) -> bool:
    """A signed note by a supervised author that no verifier has signed yet."""
    return author_supervised and signed(body) and not cosigned(body)


def moment(value: str) -> datetime:
    """A FHIR date, dateTime or instant as an aware datetime (partial dates: their start)."""
    if re.fullmatch(r"\d{4}", value):
        value += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", value):
        value += "-01"
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def overdue(drafts: list[tuple[str, str]], now_iso: str, days: int) -> list[str]:
    """Ids of the drafts (id, created) created more than `days` days before now, in order.

    A date without a time counts from its midnight UTC. `ValueError` on a date that is
    not FHIR's date or dateTime.
    """
    cutoff = moment(now_iso) - timedelta(days=days)
    return [draft_id for draft_id, created in drafts if moment(created) < cutoff]
