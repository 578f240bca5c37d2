"""The note's size limits over HTTP: 100,000 characters round-trip exactly (through
create, read, edit, sign and history); one character more, or more than
MAX_NOTE_BYTES of UTF-8, is 413 naming the limit."""

from __future__ import annotations

import json

import pytest

from functions.engine.service import address_of
from functions.notes.declarations import DOCUMENT_REFERENCE
from functions.notes.documents import DATA, MAX_NOTE_BYTES, MAX_NOTE_CHARS, note_text, with_text
from models.item_size import ITEM_MAX, item_size
from models.items import ResourceItem
from tests.api.test_notes_workflow import (
    NOTES,
    Staff,
    issue,
    new_patient,
    new_staff,
    note_body,
    operation,
    post_note,
)

# Typical clinical text: mostly ASCII, some accents, the odd symbol, emoji and CJK name.
CLINICAL = ("Patient reports improved sleep (7h), mood 6/10; café-au-lait macules noted. "
            "Résumé of plan: continue CBT, naïve to SSRIs; µg dosing → 50 µg. 😊 王\n")  # fmt: skip


def _text(n: int, unit: str = CLINICAL) -> str:
    return (unit * (n // len(unit) + 1))[:n]


@pytest.fixture(scope="module")
def clinician(api, stack) -> Staff:  # type: ignore[no-untyped-def]
    return new_staff(api, stack, "clinician")


def test_a_note_of_100000_characters_round_trips_exactly_through_sign(api, clinician):
    text = _text(MAX_NOTE_CHARS)
    assert len(text) == MAX_NOTE_CHARS and not text.isascii()
    pid = new_patient(api)
    r = post_note(api, clinician, note_body(pid, clinician.ref, text))
    assert r.status_code == 201, r.body
    note = json.loads(r.body)
    assert note_text(note) == text
    edited_text = text[:-1] + "é"
    body = json.dumps({**with_text(note, edited_text), "id": note["id"]})
    headers = clinician.headers(If_Match='W/"1"')
    r = api.http.put(f"{NOTES}/{note['id']}", body=body, headers=headers)
    assert r.status_code == 200, r.body
    signed = operation(api, clinician, note["id"])
    assert signed.status_code == 200, signed.body
    assert note_text(json.loads(signed.body)) == edited_text
    read = api.http.get(f"{NOTES}/{note['id']}", headers=clinician.headers())
    assert note_text(json.loads(read.body)) == edited_text
    first = api.http.get(f"{NOTES}/{note['id']}/_history/1", headers=clinician.headers())
    assert note_text(json.loads(first.body)) == text


def test_the_stored_item_of_a_full_note_is_far_under_dynamodbs_item_limit(api, clinician):
    text = _text(MAX_NOTE_CHARS)
    note = json.loads(post_note(api, clinician, note_body(new_patient(api), clinician.ref,
                                                          text)).body)  # fmt: skip
    a = address_of(clinician.tenant, DOCUMENT_REFERENCE, note["id"])
    assert a is not None
    item = ResourceItem.get(a.pk, a.sk, consistent_read=True)
    size = item_size(item.serialize())
    assert len(text.encode("utf-8")) < 110_000 and size < ITEM_MAX // 2


def test_one_character_over_the_limit_is_413_naming_the_text(api, clinician):
    r = post_note(api, clinician, note_body(new_patient(api), clinician.ref,
                                            "a" * (MAX_NOTE_CHARS + 1)))  # fmt: skip
    assert r.status_code == 413, r.body
    assert issue(r)["expression"] == [DATA] and "100,000 characters" in issue(r)["diagnostics"]


def test_a_text_over_the_byte_limit_is_413_naming_both_limits(api, clinician):
    text = "é" * (MAX_NOTE_BYTES // 2 + 1)  # under 100,000 characters, over the bytes
    r = post_note(api, clinician, note_body(new_patient(api), clinician.ref, text))
    assert r.status_code == 413, r.body
    assert issue(r)["expression"] == [DATA]
    assert "190,000 bytes" in issue(r)["diagnostics"]


def test_100000_emoji_are_413_before_anything_is_stored(api, clinician):
    pid = new_patient(api)
    r = post_note(api, clinician, note_body(pid, clinician.ref, "🙂" * MAX_NOTE_CHARS))
    assert r.status_code == 413, r.body  # the body itself is over the request limit
    found = api.http.get(f"{NOTES}?patient={pid}", headers=clinician.headers())
    assert json.loads(found.body).get("entry", []) == []


def test_an_edit_over_the_limit_is_413_and_keeps_the_draft(api, clinician):
    note = json.loads(post_note(api, clinician, note_body(new_patient(api),
                                                          clinician.ref)).body)  # fmt: skip
    body = json.dumps({**with_text(note, "b" * (MAX_NOTE_CHARS + 1)), "id": note["id"]})
    r = api.http.put(f"{NOTES}/{note['id']}", body=body, headers=clinician.headers())
    assert r.status_code == 413
    now = json.loads(api.http.get(f"{NOTES}/{note['id']}", headers=clinician.headers()).body)
    assert now["meta"]["versionId"] == "1"
