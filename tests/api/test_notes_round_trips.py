"""Round trips of the note's requests, counted by the moto server itself (as
tests/api/test_engine_round_trips.py does), warm: keys and data keys cached first.

$sign: one Query (the signer's Practitioner), one BatchGetItem (the note and the
chart's note-ring counter) and ONE TransactWriteItems (note, history, search
entries, Provenance, chart header, counter, events, audit record)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from functions.notes.documents import with_text
from tests.api.test_notes_workflow import (
    NOTES,
    Staff,
    draft,
    new_patient,
    new_staff,
    note_body,
    operation,
    post_note,
)


def _calls(moto, request: Callable[[], Any]) -> tuple[Counter[str], Any]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]}), result


@pytest.fixture(scope="module")
def warm(api, stack) -> tuple[Staff, str]:  # type: ignore[no-untyped-def]
    staff = new_staff(api, stack, "clinician")
    pid = new_patient(api)
    note = draft(api, staff, pid)
    assert operation(api, staff, note["id"]).status_code == 200
    return staff, pid


def test_sign_is_one_query_one_batch_get_and_one_transaction(api, moto, warm):
    staff, pid = warm
    note = draft(api, staff, pid)
    calls, r = _calls(moto, lambda: operation(api, staff, note["id"]))
    assert r.status_code == 200, r.body
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.BatchGetItem": 1,
                             "dynamodb.TransactWriteItems": 1})  # fmt: skip


def test_a_note_create_is_one_query_and_one_transaction(api, moto, warm):
    staff, pid = warm
    body = note_body(pid, staff.ref)
    calls, r = _calls(moto, lambda: post_note(api, staff, body))
    assert r.status_code == 201, r.body
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1})


def test_an_edit_with_if_match_is_one_get_and_one_transaction(api, moto, warm):
    staff, pid = warm
    note = draft(api, staff, pid)
    body = json.dumps({**with_text(note, "Edited."), "id": note["id"]})
    headers = staff.headers(If_Match='W/"1"')
    calls, r = _calls(moto, lambda: api.http.put(f"{NOTES}/{note['id']}", body=body,
                                                 headers=headers))  # fmt: skip
    assert r.status_code == 200, r.body
    assert calls == Counter({"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1})


def test_a_read_is_one_get_and_one_audit_put(api, moto, warm):
    staff, pid = warm
    note = draft(api, staff, pid)
    calls, r = _calls(moto, lambda: api.http.get(f"{NOTES}/{note['id']}", headers=staff.headers()))
    assert r.status_code == 200
    assert calls == Counter({"dynamodb.GetItem": 1, "dynamodb.PutItem": 1})


def test_cosign_is_one_query_one_batch_get_and_one_transaction(api, stack, moto, warm):
    supervisor = new_staff(api, stack, "supervisor")
    trainee = new_staff(api, stack, "clinician", supervisor=supervisor.ref)
    note = draft(api, trainee, warm[1])
    assert operation(api, trainee, note["id"]).status_code == 200
    calls, r = _calls(moto, lambda: operation(api, supervisor, note["id"], "$cosign"))
    assert r.status_code == 200, r.body
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.BatchGetItem": 1,
                             "dynamodb.TransactWriteItems": 1})  # fmt: skip
