"""Races of `$sign`, made deterministic: the use case takes the route's after-load
check as a plain function (`seen`), called between its read and its write, so a test
can run a rival signature exactly there, without patching anything."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from functions.common.audit import AuditDraft
from functions.common.caller import Caller
from functions.common.errors import Conflict, PreconditionFailed
from functions.common.principal import Principal
from functions.engine.registry import ResourceType
from functions.notes import service
from functions.notes.declarations import DOCUMENT_REFERENCE
from models import chart
from models.resources import Stored
from tests.api.test_notes_workflow import Staff, draft, new_patient, new_staff, provenances


def _caller(staff: Staff) -> Caller:
    draft_ = AuditDraft("documentreference.sign", uuid.uuid4().hex, "test", None,
                        tenant=staff.tenant, actor="sub-" + staff.username)  # fmt: skip
    principal = Principal("sub-" + staff.username, staff.username, staff.tenant,
                          frozenset({staff.role}))  # fmt: skip
    return Caller(principal, draft_.request_id, draft_)


def _plain(decl: ResourceType, stored: Stored) -> Stored:
    return stored


def _rival_once(rival: Callable[[], Any]) -> Callable[[ResourceType, Stored], Stored]:
    """A `seen` that runs `rival` to completion the first time it is called."""
    calls: list[int] = []

    def seen(decl: ResourceType, stored: Stored) -> Stored:
        if not calls:
            calls.append(1)
            rival()
        return stored

    return seen


@pytest.fixture(scope="module")
def clinician(api, stack) -> Staff:  # type: ignore[no-untyped-def]
    return new_staff(api, stack, "clinician")


def test_two_signatures_of_one_note_make_one_signed_version_and_one_409(api, clinician):
    note = draft(api, clinician, new_patient(api))
    won: list[Stored] = []

    def rival() -> None:
        won.append(service.sign(_caller(clinician), DOCUMENT_REFERENCE, note["id"], None, _plain))

    with pytest.raises(Conflict):
        service.sign(_caller(clinician), DOCUMENT_REFERENCE, note["id"], None, _rival_once(rival))
    assert [s.version for s in won] == [2]
    assert len(provenances(api, clinician, note["id"])) == 1


def test_two_signatures_with_the_same_if_match_make_one_200_and_one_412(api, clinician):
    note = draft(api, clinician, new_patient(api))
    won: list[Stored] = []

    def rival() -> None:
        won.append(service.sign(_caller(clinician), DOCUMENT_REFERENCE, note["id"], 'W/"1"',
                                _plain))  # fmt: skip

    with pytest.raises(PreconditionFailed):
        service.sign(_caller(clinician), DOCUMENT_REFERENCE, note["id"], 'W/"1"',
                     _rival_once(rival))  # fmt: skip
    assert [s.version for s in won] == [2]
    assert len(provenances(api, clinician, note["id"])) == 1


def test_two_notes_of_one_chart_signed_at_once_both_get_their_header(api, clinician):
    """The loser's transaction fails on the headers' version: it reads again and retries."""
    pid = new_patient(api)
    first, second = draft(api, clinician, pid), draft(api, clinician, pid)
    rival_done: list[Stored] = []

    def rival() -> None:
        rival_done.append(service.sign(_caller(clinician), DOCUMENT_REFERENCE, second["id"],
                                       None, _plain))  # fmt: skip

    signed = service.sign(_caller(clinician), DOCUMENT_REFERENCE, first["id"], None,
                          _rival_once(rival))  # fmt: skip
    assert signed.version == 2 and rival_done[0].version == 2
    packed = [e for e in chart.read(clinician.tenant, pid).entries if e.key == "3#note"]
    assert len(packed) == 1 and packed[0].open()["entries"][0]["id"] == first["id"]
    r = api.http.get(f"/fhir/R4/Patient/{pid}/$chart", headers=clinician.headers())
    ids = [n["id"] for n in json.loads(r.body)["notes"]]
    assert ids == [first["id"], second["id"]]  # newest first: the rival signed before


def test_a_sign_retried_over_http_after_success_is_409_not_a_second_signature(api, clinician):
    note = draft(api, clinician, new_patient(api))
    path = f"/fhir/R4/DocumentReference/{note['id']}/$sign"
    first = api.http.post(path, body="", headers=clinician.headers())
    second = api.http.post(path, body="", headers=clinician.headers())
    assert (first.status_code, second.status_code) == (200, 409)
    assert len(provenances(api, clinician, note["id"])) == 1


def test_two_edits_of_one_draft_with_the_same_if_match_one_wins_and_one_is_412(api, clinician):
    import base64
    from concurrent.futures import ThreadPoolExecutor

    note = draft(api, clinician, new_patient(api))
    url = f"/fhir/R4/DocumentReference/{note['id']}"

    def edit(text: str) -> int:
        body = json.loads(json.dumps(note))
        body["content"][0]["attachment"]["data"] = base64.b64encode(text.encode()).decode()
        return int(api.http.put(url, body=json.dumps(body),
                                headers=clinician.headers(**{"If-Match": 'W/"1"'})).status_code)

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(edit, ["First edit.", "Second edit."]))
    assert statuses == [200, 412]
    current = json.loads(api.http.get(url, headers=clinician.headers()).body)
    assert current["meta"]["versionId"] == "2"
    text = base64.b64decode(current["content"][0]["attachment"]["data"]).decode()
    assert text in ("First edit.", "Second edit.")
