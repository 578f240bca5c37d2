"""The clinical note's own logic (functions/notes/documents.py): text, rules, signing."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

import pytest

from functions.common.errors import Invalid, PayloadTooLarge
from functions.notes import signing
from functions.notes.documents import (
    DATA,
    MAX_NOTE_BYTES,
    MAX_NOTE_CHARS,
    NOTE_CLASS_SYSTEM,
    content_sha256,
    cosigned,
    is_addendum,
    needs_cosign,
    note_class,
    note_rules,
    note_text,
    overdue,
    signed,
    with_text,
)
from functions.notes.signing import provenance

MIXED = "Café naïve — 患者は落ち着いている 🙂 Ωμέγα\n\tfin"  # accents, CJK, emoji, controls


def _note(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/dr1"}],
        "context": {"encounter": [{"reference": "Encounter/e1"}]},
        "date": "2024-05-01T10:00:00Z",
        "content": [{"attachment": {}}],
        **extra,
    }
    return with_text(body, "Subjective: calm.")


def _expressions(issues: list[Any]) -> list[str]:
    return [e for issue in issues for e in issue.expression]


def _of_length(n: int) -> str:
    return (MIXED * (n // len(MIXED) + 1))[:n]


# --- text --------------------------------------------------------------------------------------


def test_a_note_of_the_maximum_length_in_any_script_round_trips_exactly() -> None:
    text = _of_length(MAX_NOTE_CHARS)
    assert len(text) == MAX_NOTE_CHARS and "🙂" in text and "患" in text
    note = with_text(_note(), text)
    assert note_text(note) == text
    assert note_rules(note) == []
    attachment = note["content"][0]["attachment"]
    assert attachment["contentType"] == "text/plain; charset=utf-8"
    assert base64.b64decode(attachment["data"]) == text.encode("utf-8")


def test_one_character_over_the_limit_is_payload_too_large() -> None:
    note = with_text(_note(), _of_length(MAX_NOTE_CHARS + 1))
    with pytest.raises(PayloadTooLarge) as exc:
        note_rules(note)
    assert exc.value.status == 413
    assert exc.value.issues[0].expression == [DATA]
    assert "100,000" in exc.value.issues[0].diagnostics


def test_the_character_limit_counts_code_points_not_bytes() -> None:
    note = with_text(_note(), "é" * (MAX_NOTE_BYTES // 2))  # 2 bytes each, at the byte limit
    assert note_rules(note) == []


def test_a_text_over_the_byte_limit_is_payload_too_large_naming_both_limits() -> None:
    note = with_text(_note(), "🙂" * (MAX_NOTE_BYTES // 4 + 1))  # under 100,000 characters
    with pytest.raises(PayloadTooLarge) as exc:
        note_rules(note)
    assert exc.value.issues[0].expression == [DATA]
    assert "190,000 bytes" in exc.value.issues[0].diagnostics
    assert "100,000 characters" in exc.value.issues[0].diagnostics


def test_the_byte_limit_fits_the_request_body_limit_with_room_for_the_rest() -> None:
    from functions.common.settings import api_settings

    base64_chars = 4 * -(-MAX_NOTE_BYTES // 3)
    # read afresh, not through the cache: a unit test that filled the process-wide
    # cache before the local stack set its environment would leave every later API
    # test of the process with the wrong token issuer (401)
    settings = api_settings.__wrapped__()
    assert settings.max_body_bytes - base64_chars >= 8 * 1024


@pytest.mark.parametrize(
    "data",
    ["not base64!", "QUJD=", "QQ", base64.b64encode(b"\xff\xfe bad utf-8").decode(), 42],
)
def test_data_that_is_not_base64_of_utf8_is_invalid_and_not_echoed(data: Any) -> None:
    note = _note()
    note["content"][0]["attachment"]["data"] = data
    with pytest.raises(Invalid) as exc:
        note_text(note)
    assert exc.value.status == 400
    assert exc.value.issues[0].expression == [DATA]
    assert str(data) not in str(exc.value)
    assert DATA in _expressions(note_rules(note))


def test_line_breaks_between_base64_groups_are_allowed() -> None:
    note = _note()
    data = base64.encodebytes(b"Plan: follow up.").decode()  # wrapped with \n
    note["content"][0]["attachment"]["data"] = data
    assert note_text(note) == "Plan: follow up."


def test_with_text_keeps_the_attachment_title_and_drops_what_described_the_old_text() -> None:
    note = _note()
    note["content"][0]["attachment"].update(title="Intake", size=3, hash="x", url="http://x")
    note["content"][0]["format"] = {"code": "urn:x"}
    changed = with_text(note, "new")
    attachment = changed["content"][0]["attachment"]
    assert attachment["title"] == "Intake"
    assert not {"size", "hash", "url"} & set(attachment)
    assert changed["content"][0]["format"] == {"code": "urn:x"}
    assert note_text(note) == "Subjective: calm."  # the original is not changed


def test_sha256_is_over_the_utf8_bytes_of_the_text() -> None:
    note = with_text(_note(), MIXED)
    assert content_sha256(note) == hashlib.sha256(MIXED.encode("utf-8")).hexdigest()
    assert content_sha256(note) != content_sha256(with_text(note, MIXED + " "))


# --- rules -------------------------------------------------------------------------------------


def test_a_well_formed_note_validates_with_the_r4b_model() -> None:
    from fhir.resources.R4B.documentreference import DocumentReference

    note = with_text(_note(), MIXED)
    model = DocumentReference.model_validate(note)
    assert model.content[0].attachment.data == MIXED.encode("utf-8")  # the model decodes it


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"subject": None}, "DocumentReference.subject"),
        ({"docStatus": None}, "DocumentReference.docStatus"),
        ({"docStatus": "entered-in-error"}, "DocumentReference.docStatus"),
        ({"status": "draft"}, "DocumentReference.status"),
        ({"content": []}, "DocumentReference.content"),
        ({"content": [{"attachment": {}}, {"attachment": {}}]}, "DocumentReference.content"),
        ({"content": [{}]}, "DocumentReference.content[0]"),
    ],
)
def test_the_shape_of_a_note_is_required(change: dict[str, Any], expression: str) -> None:
    note = {k: v for k, v in {**_note(), **change}.items() if v is not None}
    assert expression in _expressions(note_rules(note))


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/html; charset=utf-8", "text/plain; charset=latin-1", "application/pdf"],
)
def test_only_utf8_plain_text_is_a_note(content_type: str) -> None:
    note = _note()
    note["content"][0]["attachment"]["contentType"] = content_type
    expression = "DocumentReference.content[0].attachment.contentType"
    assert _expressions(note_rules(note)) == [expression]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain; charset=utf-8", "TEXT/PLAIN;charset=UTF-8", 'text/plain; charset="utf-8"'],
)
def test_the_charset_parameter_may_be_written_in_any_case_or_quoted(content_type: str) -> None:
    note = _note()
    note["content"][0]["attachment"]["contentType"] = content_type
    assert note_rules(note) == []


def test_psychotherapy_notes_are_told_apart_by_their_category() -> None:
    assert note_class(_note()) == "clinical-note"
    coding = {"system": NOTE_CLASS_SYSTEM, "code": "psychotherapy-note"}
    psychotherapy = _note(category=[{"coding": [{"system": "urn:other", "code": "x"}, coding]}])
    assert note_class(psychotherapy) == "psychotherapy-note"
    assert note_rules(psychotherapy) == []
    other_system = _note(category=[{"coding": [{"system": "urn:x", "code": "psychotherapy-note"}]}])
    assert note_class(other_system) == "clinical-note"


def test_an_unknown_or_contradictory_note_class_is_refused() -> None:
    unknown = _note(category=[{"coding": [{"system": NOTE_CLASS_SYSTEM, "code": "secret"}]}])
    assert _expressions(note_rules(unknown)) == ["DocumentReference.category[0].coding[0].code"]
    both = _note(
        category=[
            {"coding": [{"system": NOTE_CLASS_SYSTEM, "code": "clinical-note"}]},
            {"coding": [{"system": NOTE_CLASS_SYSTEM, "code": "psychotherapy-note"}]},
        ]
    )
    assert _expressions(note_rules(both)) == ["DocumentReference.category"]


# --- addenda -----------------------------------------------------------------------------------


def _appends(target: str, code: str = "appends") -> dict[str, Any]:
    return {"code": code, "target": {"reference": target}}


def test_an_addendum_appends_to_one_note() -> None:
    addendum = _note(relatesTo=[_appends("DocumentReference/n-1")])
    assert note_rules(addendum) == []
    assert is_addendum(addendum) == "n-1"
    assert is_addendum(_note()) is None


@pytest.mark.parametrize("code", ["replaces", "transforms", "signs"])
def test_other_relations_are_refused_as_not_supported(code: str) -> None:
    issues = note_rules(_note(relatesTo=[_appends("DocumentReference/n-1", code)]))
    assert [(i.code, i.expression) for i in issues] == [
        ("not-supported", ["DocumentReference.relatesTo[0].code"])
    ]


@pytest.mark.parametrize(
    "target", ["Patient/p1", "DocumentReference/a b", "http://x/DocumentReference/n1", "n1"]
)
def test_an_addendum_targets_a_document_reference(target: str) -> None:
    issues = note_rules(_note(relatesTo=[_appends(target)]))
    assert _expressions(issues) == ["DocumentReference.relatesTo[0].target.reference"]
    assert target not in str([i.diagnostics for i in issues])


def test_at_most_one_appends() -> None:
    body = _note(relatesTo=[_appends("DocumentReference/a"), _appends("DocumentReference/b")])
    assert _expressions(note_rules(body)) == ["DocumentReference.relatesTo"]


def test_an_unknown_relation_code_is_invalid() -> None:
    issues = note_rules(_note(relatesTo=[_appends("DocumentReference/a", "cites")]))
    assert [i.code for i in issues] == ["code-invalid"]


# --- signing -----------------------------------------------------------------------------------


def test_signed_means_final_or_amended() -> None:
    assert not signed(_note())
    assert signed(_note(docStatus="final")) and signed(_note(docStatus="amended"))


def test_a_supervised_authors_signed_note_needs_a_cosign_until_authenticated() -> None:
    final = _note(docStatus="final")
    assert needs_cosign(final, author_supervised=True)
    assert not needs_cosign(final, author_supervised=False)
    assert not needs_cosign(_note(), author_supervised=True)  # not signed yet
    cosigned_note = _note(docStatus="final", authenticator={"reference": "Practitioner/sup"})
    assert cosigned(cosigned_note) and not needs_cosign(cosigned_note, author_supervised=True)


@pytest.mark.parametrize(
    ("role", "code"),
    [("author", "1.2.840.10065.1.12.1.1"), ("verifier", "1.2.840.10065.1.12.1.5")],
)
def test_the_provenance_of_a_signature_validates_and_carries_the_digest(
    role: Literal["author", "verifier"], code: str
) -> None:
    from fhir.resources.R4B.provenance import Provenance

    note = with_text(_note(), MIXED)
    digest = content_sha256(note)
    at = "2024-05-01T12:30:00Z"
    record = provenance("DocumentReference/n1/_history/3", "Practitioner/dr1", at, role, digest)
    Provenance.model_validate(record)
    assert record["target"] == [{"reference": "DocumentReference/n1/_history/3"}]
    assert record["recorded"] == at
    assert record["agent"][0]["type"]["coding"][0]["code"] == role
    assert record["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    signature = record["signature"][0]
    assert signature["type"][0] == {
        "system": "urn:iso-astm:E1762-95:2013",
        "code": code,
        "display": signing.SIGNATURE_TYPES[role][1],
    }
    assert signature["when"] == at and signature["who"] == {"reference": "Practitioner/dr1"}
    assert signature["targetFormat"] == "text/plain; charset=utf-8"
    assert base64.b64decode(signature["data"]) == hashlib.sha256(MIXED.encode()).digest()
    assert record["extension"][0]["valueString"] == digest


@pytest.mark.parametrize(
    ("target", "role", "digest", "at"),
    [
        ("DocumentReference/n1", "author", "0" * 64, "2024-05-01T12:30:00Z"),
        ("DocumentReference/n1/_history/1", "witness", "0" * 64, "2024-05-01T12:30:00Z"),
        ("DocumentReference/n1/_history/1", "author", "0" * 63, "2024-05-01T12:30:00Z"),
        ("DocumentReference/n1/_history/1", "author", "A" * 64, "2024-05-01T12:30:00Z"),
        ("DocumentReference/n1/_history/1", "author", "0" * 64, "2024-05-01T12:30:00"),
        ("DocumentReference/n1/_history/1", "author", "0" * 64, "2024-05-01"),
    ],
)
def test_provenance_refuses_what_a_use_case_should_never_pass(
    target: str, role: Any, digest: str, at: str
) -> None:
    with pytest.raises(ValueError):
        provenance(target, "Practitioner/dr1", at, role, digest)


# --- overdue drafts ----------------------------------------------------------------------------


def test_drafts_older_than_the_limit_are_overdue_in_their_order() -> None:
    now = "2024-05-10T12:00:00Z"
    drafts = [
        ("fresh", "2024-05-09T12:00:00Z"),
        ("old", "2024-05-01T00:00:00+00:00"),
        ("exactly-three-days", "2024-05-07T12:00:00Z"),
        ("just-over", "2024-05-07T11:59:59Z"),
        ("date-only", "2024-05-06"),
        ("other-zone", "2024-05-07T13:00:00+02:00"),  # 11:00 UTC
    ]
    assert overdue(drafts, now, 3) == ["old", "just-over", "date-only", "other-zone"]
    assert overdue(drafts, now, 30) == []
    assert overdue([], now, 3) == []


def test_an_unreadable_date_is_an_error_not_silently_skipped() -> None:
    with pytest.raises(ValueError):
        overdue([("n1", "yesterday")], "2024-05-10T12:00:00Z", 3)
