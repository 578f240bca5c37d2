"""What signing a plan records and locks (pure functions, no I/O)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from events.plans import PlanSigned
from functions.common.errors import Conflict
from functions.plans.service import signed_body
from functions.plans.signing import canonical_json, check_unchanged, plan_provenance, plan_sha256
from tests.unit.plan_examples import treatment_plan

AT = "2026-11-26T10:00:00.000Z"


def test_the_digest_covers_the_body_without_meta_in_canonical_json() -> None:
    body = {"resourceType": "CarePlan", "title": "Plän", "meta": {"versionId": "2"}, "id": "a"}
    assert canonical_json(body) == '{"id":"a","resourceType":"CarePlan","title":"Plän"}'.encode()
    reordered = {"title": "Plän", "id": "a", "resourceType": "CarePlan", "meta": {"x": 1}}
    assert plan_sha256(body) == plan_sha256(reordered)
    assert plan_sha256(body) == hashlib.sha256(canonical_json(body)).hexdigest()
    assert plan_sha256(body) != plan_sha256({**body, "title": "Plan"})


def test_the_provenance_is_an_r4_provenance_of_the_signed_version() -> None:
    from fhir.resources.R4B.provenance import Provenance

    digest = plan_sha256(treatment_plan())
    body = plan_provenance("CarePlan/p.1/_history/2", "Practitioner/dr", AT, digest)
    Provenance.model_validate(body)
    assert body["target"] == [{"reference": "CarePlan/p.1/_history/2"}]
    assert base64.b64decode(body["signature"][0]["data"]).hex() == digest
    assert body["signature"][0]["targetFormat"] == "application/fhir+json"
    assert body["activity"]["coding"][0]["code"] == "LA"


def test_signing_sets_the_author_when_there_is_none() -> None:
    signed = signed_body({**treatment_plan(), "status": "draft"}, "Practitioner/dr")
    assert signed["status"] == "active" and signed["author"] == {"reference": "Practitioner/dr"}


def test_a_plan_authored_by_someone_else_cannot_be_signed() -> None:
    body = {**treatment_plan(), "author": {"reference": "Practitioner/other"}}
    with pytest.raises(Conflict):
        signed_body(body, "Practitioner/dr")
    same = {**treatment_plan(), "author": {"reference": "Practitioner/dr"}}
    assert signed_body(same, "Practitioner/dr")["author"] == same["author"]


def test_an_active_plan_may_change_its_status_only() -> None:
    active = {**treatment_plan(), "meta": {"versionId": "2"}}
    check_unchanged(active, {**active, "status": "revoked", "meta": {}})
    with pytest.raises(Conflict):
        check_unchanged(active, {**active, "status": "revoked", "title": "Changed"})
    draft = {**active, "status": "draft"}
    check_unchanged(draft, {**draft, "title": "Changed"})  # drafts are edited freely
    check_unchanged(None, draft)
    check_unchanged(active, None)  # a delete: the state machine says no


def test_the_signed_event_carries_ids_and_codes_only() -> None:
    fields = set(PlanSigned.model_fields)
    assert fields - {"version", "event_id", "tenant", "occurred_at", "actor", "request_id"} == {
        "plan_id", "patient_id", "plan_version", "kind", "signer_id", "provenance_id",
        "replaced_plan_id",
    }  # fmt: skip
    assert (PlanSigned.source, PlanSigned.detail_type) == ("emr.plans", "careplan.signed")
