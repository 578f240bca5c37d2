"""A clinical note over HTTP: a draft, edited with If-Match, signed (one transaction),
then locked (update and delete 409), corrected by an addendum signed on its own.

The helpers here (users with their Practitioner, note bodies, signing) are shared by
the other tests/api/test_notes_*.py modules."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.engine.directory import USER_SYSTEM
from functions.notes.declarations import AWAITING_COSIGN_URL, NOTE_CLASS_SYSTEM
from functions.notes.documents import with_text
from functions.notes.signing import SHA256_EXTENSION, SUPERVISOR_URL
from tests.conftest import patient_body

BASE = "/fhir/R4"
NOTES = f"{BASE}/DocumentReference"
PASSWORD = "Notes-Passw0rd-2026!"
PROGRESS = {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}


@dataclass(frozen=True)
class Staff:
    """A signed-in user of one tenant and their Practitioner."""

    tenant: str
    token: str
    practitioner_id: str
    username: str = ""
    role: str = "clinician"

    @property
    def ref(self) -> str:
        return f"Practitioner/{self.practitioner_id}"

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/fhir+json"}
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h


def new_staff(api, stack, role: str, tenant: str = "demo-clinic",  # type: ignore[no-untyped-def]
              supervisor: str | None = None) -> Staff:  # fmt: skip
    """A new user in the role's group, and their Practitioner (a trainee when a
    supervisor is named)."""
    cognito = boto3.client("cognito-idp")
    name = f"{role}-{uuid.uuid4().hex[:10]}@{tenant}.example"
    cognito.admin_create_user(
        UserPoolId=stack.user_pool_id, Username=name, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": name},
                        {"Name": "custom:tenant", "Value": tenant}],
    )  # fmt: skip
    cognito.admin_set_user_password(
        UserPoolId=stack.user_pool_id, Username=name, Password=PASSWORD, Permanent=True
    )
    cognito.admin_add_user_to_group(UserPoolId=stack.user_pool_id, Username=name, GroupName=role)
    auth = cognito.admin_initiate_auth(
        UserPoolId=stack.user_pool_id, ClientId=stack.app_client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": name, "PASSWORD": PASSWORD},
    )  # fmt: skip
    body: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [{"system": USER_SYSTEM, "value": name}],
        "name": [{"family": role.title(), "given": ["Test"]}],
    }
    if supervisor is not None:
        body["extension"] = [{"url": SUPERVISOR_URL, "valueReference": {"reference": supervisor}}]
    r = api.http.post(f"{BASE}/Practitioner", body=json.dumps(body),
                      headers=api.headers("admin", tenant))  # fmt: skip
    assert r.status_code == 201, r.body
    token = auth["AuthenticationResult"]["IdToken"]
    return Staff(tenant, token, json.loads(r.body)["id"], name, role)


def new_patient(api, tenant: str = "demo-clinic") -> str:  # type: ignore[no-untyped-def]
    return str(api.create(patient_body("Notes" + uuid.uuid4().hex[:8]), tenant=tenant)["id"])


def note_body(pid: str, author: str, text: str = "Subjective: calm, sleeping better.",
              psychotherapy: bool = False, **extra: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "type": {"coding": [PROGRESS]},
        "subject": {"reference": f"Patient/{pid}"},
        "author": [{"reference": author}],
        "content": [{"attachment": {}}],
        **extra,
    }
    if psychotherapy:
        body["category"] = [{"coding": [{"system": NOTE_CLASS_SYSTEM,
                                         "code": "psychotherapy-note"}]}]  # fmt: skip
    return with_text(body, text)


def post_note(api, staff: Staff, body: dict[str, Any], **headers: str):  # type: ignore[no-untyped-def]
    return api.http.post(NOTES, body=json.dumps(body), headers=staff.headers(**headers))


def draft(api, staff: Staff, pid: str, **kw: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = post_note(api, staff, note_body(pid, staff.ref, **kw))
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def operation(api, staff: Staff, note_id: str, name: str = "$sign", **headers: str):  # type: ignore[no-untyped-def]
    return api.http.post(f"{NOTES}/{note_id}/{name}", body="", headers=staff.headers(**headers))


def addendum_of(pid: str, author: str, target: str, text: str = "Addendum: called back.") -> dict:  # type: ignore[type-arg]
    relates = [{"code": "appends", "target": {"reference": f"DocumentReference/{target}"}}]
    return note_body(pid, author, text, relatesTo=relates)


def issue(r) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    first: dict[str, Any] = json.loads(r.body)["issue"][0]
    return first


def provenances(api, staff: Staff, note_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/Provenance?target=DocumentReference/{note_id}",
                     headers=staff.headers())  # fmt: skip
    assert r.status_code == 200, r.body
    return [e["resource"] for e in json.loads(r.body).get("entry", [])]


@pytest.fixture(scope="module")
def clinician(api, stack) -> Staff:  # type: ignore[no-untyped-def]
    return new_staff(api, stack, "clinician")


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return new_patient(api)


# ----------------------------------------------------------------- the workflow


def test_a_note_goes_draft_edit_sign_locked_then_an_addendum_is_signed_on_its_own(
    api, clinician, pid
):
    note = draft(api, clinician, pid)
    assert note["docStatus"] == "preliminary" and note["meta"]["versionId"] == "1"
    edited = {**with_text(note, "Subjective: calm. Objective: euthymic."), "id": note["id"]}
    r = api.http.put(f"{NOTES}/{note['id']}", body=json.dumps(edited),
                     headers=clinician.headers(If_Match='W/"1"'))  # fmt: skip
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["docStatus"] == "preliminary"

    r = operation(api, clinician, note["id"], If_Match='W/"2"')
    assert r.status_code == 200, r.body
    signed = json.loads(r.body)
    assert r.headers["ETag"] == 'W/"3"'
    assert signed["docStatus"] == "final" and signed["meta"]["versionId"] == "3"
    assert signed["authenticator"] == {"reference": clinician.ref}
    assert "date" in signed and signed["content"] == edited["content"]

    again = {**signed, "description": "changed"}
    r = api.http.put(f"{NOTES}/{note['id']}", body=json.dumps(again),
                     headers=clinician.headers(If_Match='W/"3"'))  # fmt: skip
    assert r.status_code == 409 and issue(r)["expression"] == ["DocumentReference.docStatus"]
    r = api.http.put(f"{NOTES}/{note['id']}", body=json.dumps(again), headers=clinician.headers())
    assert r.status_code == 409
    r = api.http.delete(f"{NOTES}/{note['id']}", headers=clinician.headers())
    assert r.status_code == 409
    assert operation(api, clinician, note["id"]).status_code == 409  # signed once only

    r = post_note(api, clinician, addendum_of(pid, clinician.ref, note["id"]))
    assert r.status_code == 201, r.body
    addendum = json.loads(r.body)
    assert operation(api, clinician, addendum["id"]).status_code == 200
    now = json.loads(api.http.get(f"{NOTES}/{note['id']}", headers=clinician.headers()).body)
    assert now == signed  # the addendum changed nothing in the note it appends to
    assert len(provenances(api, clinician, note["id"])) == 1
    assert len(provenances(api, clinician, addendum["id"])) == 1


def test_the_signature_records_the_sha256_of_the_text_bytes(api, clinician, pid):
    text = "Assessment: improving — mood 6/10, sleep 7h. Café, naïve, 患者 🙂."
    note = draft(api, clinician, pid, text=text)
    r = operation(api, clinician, note["id"])
    assert r.status_code == 200, r.body
    (prov,) = provenances(api, clinician, note["id"])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert prov["extension"] == [{"url": SHA256_EXTENSION, "valueString": digest}]
    assert base64.b64decode(prov["signature"][0]["data"]) == bytes.fromhex(digest)
    assert prov["target"] == [{"reference": f"DocumentReference/{note['id']}/_history/2"}]
    assert prov["agent"][0]["who"] == {"reference": clinician.ref}
    assert prov["agent"][0]["type"]["coding"][0]["code"] == "author"


def test_signing_keeps_a_date_the_author_gave_and_sets_one_otherwise(api, clinician, pid):
    dated = draft(api, clinician, pid, date="2026-01-05T10:00:00Z")
    undated = draft(api, clinician, pid)
    assert json.loads(operation(api, clinician, dated["id"]).body)["date"].startswith("2026-01-05")
    signed = json.loads(operation(api, clinician, undated["id"]).body)
    assert signed["date"] >= signed["meta"]["lastUpdated"][:10]


def test_a_stale_if_match_on_sign_is_412_and_signs_nothing(api, clinician, pid):
    note = draft(api, clinician, pid)
    r = operation(api, clinician, note["id"], If_Match='W/"7"')
    assert r.status_code == 412 and issue(r)["expression"] == ["If-Match"]
    r = operation(api, clinician, note["id"], If_Match="not-a-version")
    assert r.status_code == 400
    assert provenances(api, clinician, note["id"]) == []
    assert operation(api, clinician, note["id"], If_Match='W/"1"').status_code == 200


def test_only_the_author_signs_a_note(api, stack, clinician, pid):
    colleague = new_staff(api, stack, "clinician")
    note = draft(api, clinician, pid)
    r = operation(api, colleague, note["id"])
    assert r.status_code == 403 and issue(r)["expression"] == ["DocumentReference.author"]
    for role in ("front_desk", "biller", "care_coordinator", "admin", "compliance"):
        assert operation(api, api_staff(api, role), note["id"]).status_code == 403, role
    assert provenances(api, clinician, note["id"]) == []


def api_staff(api, role: str, tenant: str = "demo-clinic") -> Staff:  # type: ignore[no-untyped-def]
    """A demo user (no Practitioner of theirs is needed to be refused)."""
    return Staff(tenant, api.token(role, tenant), "none")


def test_signing_an_unknown_deleted_or_malformed_note_is_404_or_410(api, clinician, pid):
    note = draft(api, clinician, pid)
    assert api.http.delete(f"{NOTES}/{note['id']}", headers=clinician.headers()).status_code == 204
    assert operation(api, clinician, note["id"]).status_code == 410
    assert operation(api, clinician, f"{pid}.01J0000000000000000000000Z").status_code == 404
    assert operation(api, clinician, "no-such-note").status_code == 404
    assert operation(api, clinician, note["id"], "$cosign").status_code == 410


def test_a_signed_note_header_is_in_the_chart_without_its_text(api, clinician, pid):
    text = "Plan: continue CBT; the secret words " + uuid.uuid4().hex
    note = draft(api, clinician, pid, text=text)
    assert operation(api, clinician, note["id"]).status_code == 200
    r = api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=clinician.headers())
    assert r.status_code == 200, r.body
    assert text.encode() not in r.body and base64.b64encode(text.encode()) not in r.body
    (header,) = [n for n in json.loads(r.body)["notes"] if n["id"] == note["id"]]
    assert header["docStatus"] == "final" and header["awaitingCosign"] is False
    assert header["author"] == clinician.ref


def test_psychotherapy_notes_are_signed_without_a_chart_header(api, clinician, pid):
    note = draft(api, clinician, pid, psychotherapy=True)
    purpose = {"X_Purpose_Of_Use": "TREAT"}
    r = operation(api, clinician, note["id"], **purpose)
    assert r.status_code == 200, r.body
    assert json.loads(r.body)["docStatus"] == "final"
    r = api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=clinician.headers())
    assert note["id"] not in r.body.decode()
    r = api.http.get(
        f"{BASE}/Provenance?target=DocumentReference/{note['id']}",
        headers=clinician.headers(**purpose),
    )
    (prov,) = [e["resource"] for e in json.loads(r.body)["entry"]]
    assert ".p" in prov["id"]  # stored with the psychotherapy notes


def test_awaiting_cosign_is_absent_for_a_note_whose_author_is_not_a_trainee(api, clinician, pid):
    note = draft(api, clinician, pid)
    signed = json.loads(operation(api, clinician, note["id"]).body)
    assert AWAITING_COSIGN_URL not in json.dumps(signed)
