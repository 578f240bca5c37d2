"""Treatment plans over HTTP: written as drafts, edited with If-Match, made active
only by `$sign` (one transaction: the plan, one Provenance, the event, the audit
record), locked once signed, ended by an update, revised by a plan that replaces
the old one, which signing revokes; the chart shows active plans only."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions.common.audit import AuditDraft
from functions.common.caller import Caller
from functions.common.errors import Forbidden
from functions.common.principal import Principal
from functions.engine.directory import USER_SYSTEM
from tests.conftest import patient_body
from tests.unit import plan_examples

BASE = "/fhir/R4"
TENANT = "demo-clinic"


# --- helpers (shared by tests/api/test_plans_*.py) ------------------------------------------


def signer(api, role: str = "clinician", tenant: str = TENANT) -> str:  # type: ignore[no-untyped-def]
    """The Practitioner id of a demo user (made once, by a conditional create)."""
    from devstack import seed

    name = seed.username(role, tenant)
    body = {
        "resourceType": "Practitioner",
        "identifier": [{"system": USER_SYSTEM, "value": name}],
        "name": [{"family": "Signer", "given": [role]}],
    }
    criteria = f"identifier={USER_SYSTEM}|{name}"
    r = api.http.post(f"{BASE}/Practitioner", body=json.dumps(body),
                      headers=api.headers("admin", tenant, If_None_Exist=criteria))  # fmt: skip
    assert r.status_code in (200, 201), r.body
    return str(json.loads(r.body)["id"])


def new_patient(api, tenant: str = TENANT) -> str:  # type: ignore[no-untyped-def]
    body = patient_body("Plan" + uuid.uuid4().hex[:8])
    r = api.http.post(f"{BASE}/Patient", body=json.dumps(body), headers=api.headers(
        "clinician", tenant))  # fmt: skip
    assert r.status_code == 201, r.body
    return str(json.loads(r.body)["id"])


def post(api, kind: str, body: dict[str, Any], role: str = "clinician", tenant: str = TENANT):  # type: ignore[no-untyped-def]
    return api.http.post(f"{BASE}/{kind}", body=json.dumps(body), headers=api.headers(role, tenant))


def created(r) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert r.status_code == 201, r.body
    found: dict[str, Any] = json.loads(r.body)
    return found


def new_goal(api, pid: str, tenant: str = TENANT) -> str:  # type: ignore[no-untyped-def]
    body = plan_examples.goal()
    del body["id"]
    body["subject"] = {"reference": f"Patient/{pid}"}
    return str(created(post(api, "Goal", body, tenant=tenant))["id"])


def treatment_plan(pid: str, goal_id: str, **extra: Any) -> dict[str, Any]:
    body = plan_examples.treatment_plan()
    body.update(status="draft", subject={"reference": f"Patient/{pid}"},
                goal=[{"reference": f"Goal/{goal_id}"}])  # fmt: skip
    return {**body, **extra}


def safety_plan(pid: str, **extra: Any) -> dict[str, Any]:
    body = plan_examples.safety_plan()
    body.update(status="draft", subject={"reference": f"Patient/{pid}"})
    return {**body, **extra}


def put(  # type: ignore[no-untyped-def]
    api, plan: dict[str, Any], role: str = "clinician", if_match: bool = True,
    tenant: str = TENANT, **changes: Any,
):  # fmt: skip
    body = {**plan, **changes}
    body.pop("meta", None)
    extra = {"If_Match": f'W/"{plan["meta"]["versionId"]}"'} if if_match else {}
    return api.http.put(f"{BASE}/CarePlan/{plan['id']}", body=json.dumps(body),
                        headers=api.headers(role, tenant, **extra))  # fmt: skip


def sign(api, plan_id: str, role: str = "clinician", tenant: str = TENANT, **extra: str):  # type: ignore[no-untyped-def]
    headers = api.headers(role, tenant, **extra)
    return api.http.post(f"{BASE}/CarePlan/{plan_id}/$sign", headers=headers)


def read(api, kind: str, rid: str, role: str = "clinician", tenant: str = TENANT):  # type: ignore[no-untyped-def]
    return api.http.get(f"{BASE}/{kind}/{rid}", headers=api.headers(role, tenant))


def chart_plans(api, pid: str, role: str = "clinician") -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/Patient/{pid}/$chart", headers=api.headers(role))
    assert r.status_code == 200, r.body
    plans: list[dict[str, Any]] = json.loads(r.body)["plans"]
    return plans


def provenances(api, plan_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"{BASE}/Provenance?target=CarePlan/{plan_id}", headers=api.headers())
    assert r.status_code == 200, r.body
    return [e["resource"] for e in json.loads(r.body)["entry"]]


def issue(r) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    first = json.loads(r.body)["issue"][0]
    return first["code"], first.get("expression", [])


def calls(moto, request: Callable[[], Any]) -> tuple[Counter[str], Any]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    result = request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]}), result


def signed_events(stack, plan_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=stack.table_name,
        FilterExpression="begins_with(pk, :p) AND detail_type = :d",
        ExpressionAttributeValues={":p": {"S": f"TENANT#{TENANT}#OUTBOX#"},
                                   ":d": {"S": "careplan.signed.v1"}},
    )  # fmt: skip
    found = [json.loads(i["detail"]["S"]) for page in pages for i in page["Items"]]
    return [d for d in found if d["plan_id"] == plan_id]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def pid(api) -> str:  # type: ignore[no-untyped-def]
    return new_patient(api)


@pytest.fixture
def me(api) -> str:  # type: ignore[no-untyped-def]
    return signer(api)


@pytest.fixture
def draft(api, pid, me) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return created(post(api, "CarePlan", treatment_plan(pid, new_goal(api, pid))))


def _signed(api, plan: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = sign(api, plan["id"])
    assert r.status_code == 200, r.body
    found: dict[str, Any] = json.loads(r.body)
    return found


# --- drafts -----------------------------------------------------------------------------------


def test_a_plan_is_written_as_a_draft_and_edited_with_if_match(api, draft):
    assert draft["status"] == "draft" and draft["meta"]["versionId"] == "1"
    r = put(api, draft, title="Treatment plan, second session")
    assert r.status_code == 200, r.body
    edited = json.loads(r.body)
    assert edited["status"] == "draft" and edited["meta"]["versionId"] == "2"
    assert put(api, draft, title="A stale edit").status_code == 412
    assert json.loads(read(api, "CarePlan", draft["id"]).body)["title"] == edited["title"]


@pytest.mark.parametrize("status", ["active", "revoked", "completed"])
def test_a_new_plan_starts_as_a_draft(api, pid, me, status):
    r = post(api, "CarePlan", treatment_plan(pid, new_goal(api, pid), status=status))
    assert r.status_code == 409, r.body
    assert issue(r) == ("business-rule", ["CarePlan.status"])


def test_an_update_cannot_make_a_draft_active(api, draft):
    r = put(api, draft, status="active")
    assert r.status_code == 409, r.body
    assert issue(r) == ("business-rule", ["CarePlan.status"])


def test_an_incomplete_treatment_plan_is_refused_naming_the_element(api, pid, me):
    body = treatment_plan(pid, new_goal(api, pid))
    body["extension"] = []
    r = post(api, "CarePlan", body)
    assert r.status_code == 400, r.body
    assert any("review-date" in e for e in issue(r)[1])


def test_a_goal_is_refused_naming_the_element(api, pid):
    body = {**plan_examples.goal(), "subject": {"reference": f"Patient/{pid}"}}
    del body["id"], body["lifecycleStatus"]
    r = post(api, "Goal", body)
    assert r.status_code == 400, r.body
    assert issue(r) == ("required", ["Goal.lifecycleStatus"])


def test_a_goal_of_another_patient_is_refused(api, pid, me):
    elsewhere = new_goal(api, new_patient(api))
    r = post(api, "CarePlan", treatment_plan(pid, elsewhere))
    assert r.status_code == 400, r.body
    assert issue(r) == ("value", ["CarePlan.goal[0].reference"])


def test_a_goal_that_does_not_exist_is_refused(api, pid, me):
    goal_id = new_goal(api, pid)
    missing = goal_id[:-4] + ("AAAA" if not goal_id.endswith("AAAA") else "BBBB")
    r = post(api, "CarePlan", treatment_plan(pid, missing))
    assert r.status_code == 400, r.body
    assert issue(r) == ("value", ["CarePlan.goal"])


def test_a_goal_of_another_organisation_is_refused(api, pid, me):
    theirs = new_goal(api, new_patient(api, "other-clinic"), "other-clinic")
    r = post(api, "CarePlan", treatment_plan(pid, theirs))
    assert r.status_code == 400, r.body


# --- signing ----------------------------------------------------------------------------------


def test_signing_makes_the_plan_active_with_one_provenance_in_one_transaction(
    api, moto, stack, draft, me
):
    counted, r = calls(moto, lambda: sign(api, draft["id"], If_Match='W/"1"'))
    assert r.status_code == 200, r.body
    plan = json.loads(r.body)
    assert plan["status"] == "active" and plan["meta"]["versionId"] == "2"
    assert plan["author"] == {"reference": f"Practitioner/{me}"}
    assert r.headers["ETag"] == 'W/"2"'
    assert counted == Counter(
        {"dynamodb.GetItem": 1, "dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}
    )
    (provenance,) = provenances(api, draft["id"])
    assert provenance["target"] == [{"reference": f"CarePlan/{draft['id']}/_history/2"}]
    assert provenance["agent"][0]["who"] == {"reference": f"Practitioner/{me}"}
    (event,) = signed_events(stack, draft["id"])
    assert event["plan_version"] == 2 and event["kind"] == "treatment-plan"
    assert event["provenance_id"] == provenance["id"] and event["signer_id"] == me


def test_the_signature_is_the_sha256_of_the_signed_version_without_meta(api, draft):
    _signed(api, draft)
    r = api.http.get(f"{BASE}/CarePlan/{draft['id']}/_history/2", headers=api.headers())
    version = {k: v for k, v in json.loads(r.body).items() if k != "meta"}
    canonical = json.dumps(version, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    (provenance,) = provenances(api, draft["id"])
    assert provenance["signature"][0]["data"] == base64.b64encode(digest).decode("ascii")
    assert provenance["signature"][0]["targetFormat"] == "application/fhir+json"
    assert provenance["extension"][0]["valueString"] == digest.hex()


def test_signing_with_a_stale_if_match_is_412_and_changes_nothing(api, draft):
    assert put(api, draft, title="Edited").status_code == 200
    r = sign(api, draft["id"], If_Match='W/"1"')
    assert r.status_code == 412, r.body
    assert json.loads(read(api, "CarePlan", draft["id"]).body)["status"] == "draft"
    assert provenances(api, draft["id"]) == []


def test_signing_an_active_plan_is_409_and_adds_no_signature(api, draft):
    _signed(api, draft)
    r = sign(api, draft["id"])
    assert r.status_code == 409, r.body
    assert issue(r) == ("business-rule", ["CarePlan.status"])
    assert len(provenances(api, draft["id"])) == 1


def test_a_plan_authored_by_someone_else_is_signed_by_them_only(api, pid, me):
    other = signer(api, "supervisor")
    body = treatment_plan(pid, new_goal(api, pid), author={"reference": f"Practitioner/{other}"})
    plan = created(post(api, "CarePlan", body))
    r = sign(api, plan["id"])
    assert r.status_code == 409, r.body
    assert issue(r) == ("business-rule", ["CarePlan.author"])
    r = sign(api, plan["id"], role="supervisor")
    assert r.status_code == 200, r.body


def test_signing_an_unknown_plan_is_404(api, pid, me):
    assert sign(api, f"{pid}.01M8CCKP2TV1S25T4D62WHDFFM").status_code == 404
    assert sign(api, "not-a-plan").status_code == 404


def test_a_user_without_a_practitioner_cannot_sign(api, draft):
    from functions.plans.service import sign as sign_plan

    audit = AuditDraft("careplan.sign", uuid.uuid4().hex, "test", None, tenant=TENANT, actor="t")
    nobody = Principal("sub-x", f"nobody-{uuid.uuid4().hex[:8]}@demo-clinic.example", TENANT,
                       frozenset({"clinician"}))  # fmt: skip
    with pytest.raises(Forbidden):
        sign_plan(Caller(nobody, audit.request_id, audit), draft["id"], None)


# --- after signing ----------------------------------------------------------------------------


@pytest.mark.parametrize("if_match", [True, False])
def test_a_signed_plan_cannot_be_edited(api, draft, if_match):
    plan = _signed(api, draft)
    for changes in ({"title": "Changed"}, {"status": "revoked", "title": "Changed"},
                    {"status": "draft"}):  # fmt: skip
        r = put(api, plan, if_match=if_match, **changes)
        assert r.status_code == 409, (changes, r.body)
    r = api.http.delete(f"{BASE}/CarePlan/{plan['id']}", headers=api.headers("supervisor"))
    assert r.status_code == 409, r.body
    assert json.loads(read(api, "CarePlan", plan["id"]).body)["meta"]["versionId"] == "2"


@pytest.mark.parametrize("status", ["revoked", "completed", "entered-in-error"])
def test_ending_a_signed_plan_takes_it_off_the_chart(api, pid, draft, status):
    plan = _signed(api, draft)
    assert [p["id"] for p in chart_plans(api, pid)] == [plan["id"]]
    r = put(api, plan, status=status)
    assert r.status_code == 200, r.body
    assert chart_plans(api, pid) == []
    ended = json.loads(r.body)
    assert put(api, ended, status="active").status_code == 409


def test_the_chart_shows_the_plan_header(api, pid, draft):
    plan = _signed(api, draft)
    (entry,) = chart_plans(api, pid)
    assert entry == {
        "resourceType": "CarePlan", "id": plan["id"], "kind": "treatment-plan",
        "status": "active", "title": plan["title"], "reviewDate": "2026-06-01",
        "goalCount": 1, "activityCount": 2,
    }  # fmt: skip


def test_a_draft_is_not_in_the_chart(api, pid, draft):
    assert chart_plans(api, pid) == []


# --- revisions --------------------------------------------------------------------------------


def test_a_revision_revokes_the_old_plan_when_it_is_signed(api, moto, stack, pid, draft):
    old = _signed(api, draft)
    body = treatment_plan(pid, old["goal"][0]["reference"][5:], title="Revised plan",
                          replaces=[{"reference": f"CarePlan/{old['id']}"}])  # fmt: skip
    revision = created(post(api, "CarePlan", body))
    assert json.loads(read(api, "CarePlan", old["id"]).body)["status"] == "active"
    counted, r = calls(moto, lambda: sign(api, revision["id"]))
    assert r.status_code == 200, r.body
    assert counted == Counter(
        {"dynamodb.GetItem": 2, "dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1}
    )
    revoked = json.loads(read(api, "CarePlan", old["id"]).body)
    assert revoked["status"] == "revoked" and revoked["meta"]["versionId"] == "3"
    assert [p["id"] for p in chart_plans(api, pid)] == [revision["id"]]
    (event,) = signed_events(stack, revision["id"])
    assert event["replaced_plan_id"] == old["id"]
    query = f"patient={pid}&replaces={old['id']}"
    r = api.http.get(f"{BASE}/CarePlan?{query}", headers=api.headers())
    assert [e["resource"]["id"] for e in json.loads(r.body)["entry"]] == [revision["id"]]


def test_a_revision_of_a_plan_already_ended_signs_and_leaves_it(api, pid, draft):
    old = _signed(api, draft)
    ended = json.loads(put(api, old, status="completed").body)
    body = treatment_plan(pid, old["goal"][0]["reference"][5:],
                          replaces=[{"reference": f"CarePlan/{old['id']}"}])  # fmt: skip
    assert sign(api, created(post(api, "CarePlan", body))["id"]).status_code == 200
    now = json.loads(read(api, "CarePlan", old["id"]).body)
    assert now["status"] == "completed" and now["meta"] == ended["meta"]


def test_a_revision_must_replace_a_signed_plan(api, pid, draft):
    body = treatment_plan(pid, draft["goal"][0]["reference"][5:],
                          replaces=[{"reference": f"CarePlan/{draft['id']}"}])  # fmt: skip
    revision = created(post(api, "CarePlan", body))
    r = sign(api, revision["id"])
    assert r.status_code == 400, r.body
    assert issue(r) == ("value", ["CarePlan.replaces[0].reference"])
    assert json.loads(read(api, "CarePlan", revision["id"]).body)["status"] == "draft"


def test_a_revision_cannot_replace_another_patients_plan(api, pid, draft):
    other = new_patient(api)
    body = treatment_plan(other, new_goal(api, other),
                          replaces=[{"reference": f"CarePlan/{draft['id']}"}])  # fmt: skip
    r = post(api, "CarePlan", body)
    assert r.status_code == 400, r.body
    assert issue(r) == ("value", ["CarePlan.replaces[0].reference"])
