"""The three instruments served read-only from code: `GET /Questionnaire` (a
searchset, `url` and `_id` search) and `GET /Questionnaire/{id}`, for every role of
every tenant (they are no PHI); nothing else is accepted."""

from __future__ import annotations

import json

import pytest

from functions.measures.instruments import INSTRUMENTS
from tests.api.test_measures_submit import BASE, OTHER, TENANT, URL, issue

ROLES = ("clinician", "prescriber", "supervisor", "front_desk", "biller", "care_coordinator",
         "admin", "compliance")  # fmt: skip


def _ids(r) -> list[str]:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    assert body["total"] == len(body["entry"])
    return [e["resource"]["id"] for e in body["entry"]]


@pytest.mark.parametrize("tenant", [TENANT, OTHER])
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_questionnaires(api, role, tenant):
    headers = api.headers(role, tenant)
    assert _ids(api.http.get(f"{BASE}/Questionnaire", headers=headers)) == [
        "phq-9", "gad-7", "c-ssrs-screener"
    ]  # fmt: skip
    r = api.http.get(f"{BASE}/Questionnaire/gad-7", headers=headers)
    assert r.status_code == 200 and json.loads(r.body)["url"] == URL + "gad-7"


def test_the_questionnaires_are_the_instruments_definitions(api):
    for instrument in INSTRUMENTS:
        r = api.http.get(f"{BASE}/Questionnaire/{instrument.key}", headers=api.headers())
        assert json.loads(r.body) == instrument.questionnaire


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"url={URL}phq-9", ["phq-9"]),
        (f"url={URL}c-ssrs-screener|1.0.0", ["c-ssrs-screener"]),
        (f"url={URL}phq-9|9.9.9", []),
        ("url=http://loinc.org/q/44249-1", []),
        ("_id=gad-7,phq-9", ["phq-9", "gad-7"]),
        (f"url={URL}gad-7&_id=phq-9", []),
    ],
)
def test_a_search_by_url_or_id(api, query, expected):
    assert _ids(api.http.get(f"{BASE}/Questionnaire?{query}", headers=api.headers())) == expected


def test_an_unknown_questionnaire_is_404_and_an_unknown_parameter_400(api):
    r = api.http.get(f"{BASE}/Questionnaire/bdi-ii", headers=api.headers())
    assert r.status_code == 404 and issue(r)[1] == ["Questionnaire.id"]
    r = api.http.get(f"{BASE}/Questionnaire?title=PHQ", headers=api.headers())
    assert r.status_code == 400 and issue(r)[1] == ["Questionnaire.search"]


def test_questionnaires_need_a_signed_in_user_and_cannot_be_written(api):
    assert api.http.get(f"{BASE}/Questionnaire/phq-9").status_code == 401
    body = json.dumps({"resourceType": "Questionnaire", "status": "draft"})
    for method in (api.http.post, api.http.put, api.http.delete):
        path = f"{BASE}/Questionnaire" if method is api.http.post else f"{BASE}/Questionnaire/phq-9"
        assert method(path, headers=api.headers(), body=body).status_code in (403, 405)
