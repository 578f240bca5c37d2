"""Safety flags: an active flag is in the chart; it becomes inactive only through
`$resolve` with a signed note of the same patient, in one transaction that records
the note, the resolver and the end of the period; a plain update cannot do it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from functions.measures.service import RESOLUTION_URL
from tests.api.test_measures_submit import (
    BASE,
    OTHER,
    calls,
    chart_keys,
    issue,
    new_patient,
    response,
    search,
    submitted,
)
from tests.api.test_notes_workflow import Staff, draft, new_staff, operation

NOTE = "Parameters.parameter.where(name='note')"
REASON = "Parameters.parameter.where(name='reason')"


@pytest.fixture(scope="module")
def staff(api, stack) -> Staff:  # type: ignore[no-untyped-def]
    return new_staff(api, stack, "clinician")


def _flagged(api, pid: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    submitted(api, response(pid, "phq-9", [0, 0, 0, 0, 0, 0, 0, 0, 2]))
    (flag,) = search(api, f"Flag?patient={pid}")
    return flag


def _signed_note(api, staff: Staff, pid: str) -> str:  # type: ignore[no-untyped-def]
    note = draft(api, staff, pid)
    r = operation(api, staff, note["id"])
    assert r.status_code == 200, r.body
    return str(note["id"])


def _params(note: str | None = None, reason: str | None = None) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = []
    if note is not None:
        parameter.append({"name": "note", "valueReference": {"reference": note}})
    if reason is not None:
        parameter.append({"name": "reason", "valueString": reason})
    return {"resourceType": "Parameters", "parameter": parameter}


def _resolve(api, staff: Staff, flag_id: str, body: Any):  # type: ignore[no-untyped-def]
    text = body if isinstance(body, str) else json.dumps(body)
    return api.http.post(f"{BASE}/Flag/{flag_id}/$resolve", body=text, headers=staff.headers())


def test_resolving_with_a_signed_note_ends_the_flag_in_one_transaction(api, moto, stack, staff):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    note = _signed_note(api, staff, pid)
    assert f"1#Flag#{flag['id']}" in chart_keys(stack, pid)
    body = _params(f"DocumentReference/{note}", "Safety plan made; no current intent.")
    counted, r = calls(moto, lambda: _resolve(api, staff, flag["id"], body))
    assert r.status_code == 200, r.body
    done = json.loads(r.body)
    assert done["status"] == "inactive" and done["meta"]["versionId"] == "2"
    assert done["period"]["start"] == flag["period"]["start"] and done["period"]["end"]
    (resolution,) = [e for e in done["extension"] if e["url"] == RESOLUTION_URL]
    parts = {p["url"]: p for p in resolution["extension"]}
    assert parts["note"]["valueReference"] == {"reference": f"DocumentReference/{note}"}
    assert parts["resolver"]["valueReference"] == {"reference": staff.ref}
    assert parts["reason"]["valueString"].startswith("Safety plan")
    assert f"1#Flag#{flag['id']}" not in chart_keys(stack, pid)
    assert counted["dynamodb.TransactWriteItems"] == 1
    assert counted == Counter({"dynamodb.GetItem": 2, "dynamodb.Query": 1,
                               "dynamodb.TransactWriteItems": 1}), counted  # fmt: skip
    again = _resolve(api, staff, flag["id"], body)
    assert again.status_code == 409 and issue(again)[1] == ["Flag.status"]


def test_a_draft_note_does_not_resolve_a_flag(api, staff):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    note = draft(api, staff, pid)
    r = _resolve(api, staff, flag["id"], _params(f"DocumentReference/{note['id']}"))
    assert r.status_code == 400
    assert issue(r) == ("value", ["Parameters.parameter.where(name='note')"])
    assert search(api, f"Flag?patient={pid}")[0]["status"] == "active"


def test_another_patients_note_does_not_resolve_a_flag(api, staff):
    pid, other = new_patient(api), new_patient(api)
    flag = _flagged(api, pid)
    note = _signed_note(api, staff, other)
    r = _resolve(api, staff, flag["id"], _params(f"DocumentReference/{note}"))
    assert r.status_code == 400 and issue(r)[1] == ["Parameters.parameter.where(name='note')"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (_params(), NOTE),
        (_params("Patient/x"), NOTE),
        (_params("DocumentReference/"), NOTE),
        (_params("DocumentReference/nope.x"), NOTE),
        (_params("DocumentReference/NOTE", ""), REASON),
        (_params("DocumentReference/NOTE", "x" * 1001), REASON),
        (_params("DocumentReference/NOTE", "a\u202eb"), REASON),
        ({"resourceType": "Parameters", "parameter": [{"name": "force", "valueBoolean": True}]},
         "Parameters.parameter"),
        ({"resourceType": "Flag"}, "Parameters"),
    ],
)  # fmt: skip
def test_a_malformed_resolution_is_400_naming_the_parameter(api, staff, body, where):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    note = _signed_note(api, staff, pid)
    text = json.dumps(body).replace("NOTE", note)
    r = _resolve(api, staff, flag["id"], text)
    assert r.status_code == 400, r.body
    assert issue(r)[1] == [where]
    assert search(api, f"Flag?patient={pid}")[0]["status"] == "active"


def test_a_plain_update_cannot_make_a_flag_inactive(api, stack):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    r = api.http.put(f"{BASE}/Flag/{flag['id']}", headers=api.headers(),
                     body=json.dumps({**flag, "status": "inactive"}))  # fmt: skip
    assert r.status_code == 409 and issue(r)[1] == ["Flag.status"], r.body
    r = api.http.put(f"{BASE}/Flag/{flag['id']}", headers=api.headers(If_Match='W/"1"'),
                     body=json.dumps({**flag, "status": "inactive"}))  # fmt: skip
    assert r.status_code == 409, r.body  # refused in the transaction itself, without a read
    assert f"1#Flag#{flag['id']}" in chart_keys(stack, pid)


def test_a_flag_entered_in_error_leaves_the_chart_and_stays_so(api, stack, staff):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    r = api.http.put(f"{BASE}/Flag/{flag['id']}", headers=api.headers(),
                     body=json.dumps({**flag, "status": "entered-in-error"}))  # fmt: skip
    assert r.status_code == 200, r.body
    assert f"1#Flag#{flag['id']}" not in chart_keys(stack, pid)
    back = {**json.loads(r.body), "status": "active"}
    r = api.http.put(f"{BASE}/Flag/{flag['id']}", headers=api.headers(), body=json.dumps(back))
    assert r.status_code == 409
    note = _signed_note(api, staff, pid)
    r = _resolve(api, staff, flag["id"], _params(f"DocumentReference/{note}"))
    assert r.status_code == 409 and issue(r)[1] == ["Flag.status"]


def test_a_flag_created_inactive_is_refused(api):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    body = {k: v for k, v in flag.items() if k not in ("id", "meta")}
    r = api.http.post(f"{BASE}/Flag", headers=api.headers(),
                      body=json.dumps({**body, "status": "inactive"}))  # fmt: skip
    assert r.status_code == 409 and issue(r)[1] == ["Flag.status"]


def test_another_tenant_cannot_resolve_the_flag(api, stack, staff):
    pid = new_patient(api)
    flag = _flagged(api, pid)
    note = _signed_note(api, staff, pid)
    outsider = new_staff(api, stack, "clinician", tenant=OTHER)
    r = _resolve(api, outsider, flag["id"], _params(f"DocumentReference/{note}"))
    assert r.status_code == 404, r.body
    assert search(api, f"Flag?patient={pid}")[0]["status"] == "active"
