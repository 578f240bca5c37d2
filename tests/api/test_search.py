"""Patient search as the front desk uses it: starts-with, case- and
accent-insensitive, by birthdate and identifier, paged with next links."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import next_path, patient_body


def _ids(api, query: str, tenant: str = "demo-clinic") -> list[str]:  # type: ignore[no-untyped-def]
    r = api.http.get(f"/fhir/R4/Patient?{query}", headers=api.headers(tenant=tenant))
    assert r.status_code == 200, r.body
    bundle = json.loads(r.body)
    assert bundle["type"] == "searchset"
    return [e["resource"]["id"] for e in bundle["entry"]]


@pytest.fixture(scope="module")
def family(api):  # type: ignore[no-untyped-def]
    """A family name no other test uses, with an accent and an apostrophe."""
    tag = uuid.uuid4().hex[:6]
    return f"Ó'Brïen{tag}", f"obrien{tag}"


@pytest.fixture(scope="module")
def people(api, family):  # type: ignore[no-untyped-def]
    display, _ = family
    made = {}
    for given, birth in (
        ("Siobhán", "1971-03-09"),
        ("Seamus", "1971-11-30"),
        ("Ann Marie", "1990-03-09"),
    ):
        mrn = "MRN-" + uuid.uuid4().hex[:8]
        body = patient_body(display, given, birth, mrn=mrn)
        made[given] = (api.create(body), mrn)
    return made


def test_family_prefix_ignores_case_accents_and_punctuation(api, family, people):
    _, plain = family
    expected = {p["id"] for p, _ in people.values()}
    # Every query reaches into the unique tag: a bare "obr" also finds other tests' patients.
    unique = plain[:9]  # "obrien" + 3 characters of the tag
    for query in (unique, unique.upper(), "Ó'BRÏEN" + plain[6:9], plain, "o'brien" + plain[6:]):
        assert set(_ids(api, f"family={query}")) == expected, query


def test_given_and_name_match_the_start_of_any_word(api, family, people):
    _, plain = family
    siobhan = people["Siobhán"][0]["id"]
    assert siobhan in _ids(api, "given=siob")
    assert set(_ids(api, f"given=si&family={plain}")) == {siobhan}
    ann_marie = people["Ann Marie"][0]["id"]
    assert set(_ids(api, f"given=mar&family={plain}")) == {ann_marie}
    assert ann_marie in _ids(api, "name=marie")
    assert siobhan in _ids(api, f"name={plain[:4]}")


def test_given_does_not_match_family_words(api, family, people):
    _, plain = family
    assert _ids(api, f"given={plain}") == []


def test_a_prefix_that_matches_nothing_finds_nothing(api, family, people):
    _, plain = family
    assert _ids(api, f"family={plain}zz") == []


def test_birthdate_at_day_month_and_year_precision(api, family, people):
    _, plain = family
    ids = {g: p["id"] for g, (p, _) in people.items()}
    assert set(_ids(api, f"family={plain}&birthdate=1971-03-09")) == {ids["Siobhán"]}
    assert set(_ids(api, f"family={plain}&birthdate=eq1971-03")) == {ids["Siobhán"]}
    assert set(_ids(api, f"family={plain}&birthdate=1971")) == {ids["Siobhán"], ids["Seamus"]}


def test_identifier_with_and_without_system(api, people):
    patient, mrn = people["Seamus"]
    assert _ids(api, f"identifier=urn:emr:mrn|{mrn}") == [patient["id"]]
    assert _ids(api, f"identifier={mrn}") == [patient["id"]]
    assert _ids(api, f"identifier=urn:other|{mrn}") == []


def test_results_are_full_patients_with_search_mode(api, people):
    patient, mrn = people["Seamus"]
    r = api.http.get(f"/fhir/R4/Patient?identifier={mrn}", headers=api.headers())
    (entry,) = json.loads(r.body)["entry"]
    assert entry["resource"] == patient
    assert entry["search"] == {"mode": "match"}
    assert entry["fullUrl"].endswith(f"/fhir/R4/Patient/{patient['id']}")


def test_paging_follows_next_links_without_repeats(api, family, people):
    _, plain = family
    seen, url, pages = [], f"/fhir/R4/Patient?family={plain}&_count=1", 0
    while url:
        page = json.loads(api.http.get(url, headers=api.headers()).body)
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next_path(page)
        pages += 1
        assert pages < 10
    assert sorted(seen) == sorted(p["id"] for p, _ in people.values())
    assert len(seen) == len(set(seen))


def test_updated_patient_is_found_with_its_new_version(api, family):
    _, plain = family
    created = api.create(patient_body("Ren" + plain, "Before", "1966-01-01"))
    changed = {**created, "name": [{"family": "Ren" + plain, "given": ["After"]}]}
    r = api.http.put(
        f"/fhir/R4/Patient/{created['id']}",
        body=json.dumps(changed),
        headers=api.headers(If_Match='W/"1"'),
    )
    assert r.status_code == 200
    found = json.loads(
        api.http.get(f"/fhir/R4/Patient?given=after&family=ren{plain}", headers=api.headers()).body
    )["entry"]
    assert [e["resource"]["meta"]["versionId"] for e in found] == ["2"]


def test_deleted_patient_is_not_found(api, family):
    _, plain = family
    gone = api.create(patient_body("Gone" + plain))
    api.http.delete(f"/fhir/R4/Patient/{gone['id']}", headers=api.headers("supervisor"))
    assert _ids(api, f"family=gone{plain}") == []
