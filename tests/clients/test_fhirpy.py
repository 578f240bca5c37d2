"""The API driven by fhirpy's SyncFHIRClient (unmodified) over real HTTP.

What fhirpy sends (fhirpy 2.3.1, read from its source and checked on the wire):
every request carries `Accept: application/fhir+json` and the `Authorization`
given to the client; bodies are sent with `Content-Type: application/json`.
- resource.save() without id: POST {base}/Patient, the resource as body.
- resource.save() with id: PUT {base}/Patient/<id>, the whole resource (meta
  included) as body, no If-Match.
- client.get / reference.to_resource(): GET {base}/Patient/<id>.
- search(k=v).fetch(): GET {base}/Patient?k=v ("|" sent as %7C).
- count(): GET {base}/Patient?<params>&_count=0&_totalMethod=count, reads `total`.
- sort(*keys): adds _sort=<keys joined by ",">; limit(n): _count=n.
- fetch_all(): GET the first page, then each Bundle `next` link as given (an
  absolute link must start with the client's base URL).
- get_or_create(resource): POST {base}/Patient?<search params> with the resource as
  body (conditional create through the query string, no If-None-Exist header);
  "created" is `status == 201`.
"""

from __future__ import annotations

import secrets
import string
import uuid
from typing import Any

import pytest
from fhirpy import SyncFHIRClient

from tests.clients.conftest import FhirServer, print_exchange

SYSTEM = "urn:emr-tests:fhirpy"


@pytest.fixture(scope="module")
def client(fhir_server: FhirServer) -> SyncFHIRClient:
    return SyncFHIRClient(
        fhir_server.base_url,
        authorization=fhir_server.authorization("clinician"),
        requests_config={"timeout": 60, "hooks": {"response": [print_exchange]}},
    )


def _family() -> str:
    return "Fpy" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def _mrn() -> str:
    return uuid.uuid4().hex


def _patient(
    client: SyncFHIRClient,
    family: str,
    given: str = "Alex",
    birth: str = "1985-06-15",
    mrn: str | None = None,
    gender: str = "female",
) -> Any:
    return client.resource(
        "Patient",
        name=[{"family": family, "given": [given]}],
        birthDate=birth,
        gender=gender,
        identifier=[{"system": SYSTEM, "value": mrn or _mrn()}],
    )


def _created(client: SyncFHIRClient, **kwargs: Any) -> Any:
    patient = _patient(client, **kwargs)
    patient.save()
    assert patient.id, patient
    return patient


def _ids(resources: list[Any]) -> list[str]:
    return [r.id for r in resources]


def test_create_then_read_returns_the_same_patient(client: SyncFHIRClient) -> None:
    family, mrn = _family(), _mrn()
    patient = _patient(client, family, given="Robin", birth="1979-02-03", mrn=mrn)
    patient.save()

    assert patient.id
    assert patient["meta"]["versionId"] == "1"
    read = client.reference("Patient", patient.id).to_resource()
    assert read.id == patient.id
    assert read["name"][0]["family"] == family
    assert read["name"][0]["given"] == ["Robin"]
    assert read["birthDate"] == "1979-02-03"
    assert read["gender"] == "female"
    assert {"system": SYSTEM, "value": mrn} in read["identifier"]
    assert client.get("Patient", patient.id)["meta"]["versionId"] == "1"


def test_save_of_a_changed_patient_without_if_match_updates_it(client: SyncFHIRClient) -> None:
    patient = _created(client, family=_family())
    read = client.reference("Patient", patient.id).to_resource()
    read["gender"] = "other"
    read["name"][0]["given"] = ["Sam", "Lee"]

    read.save()  # PUT Patient/<id>, no If-Match

    assert read["meta"]["versionId"] == "2"
    again = client.get("Patient", patient.id)
    assert again["meta"]["versionId"] == "2"
    assert again["gender"] == "other"
    assert again["name"][0]["given"] == ["Sam", "Lee"]
    history = client.execute(f"Patient/{patient.id}/_history", method="get")
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


def test_search_by_identifier_name_and_birthdate(client: SyncFHIRClient) -> None:
    family, mrn = _family(), _mrn()
    patient = _created(client, family=family, birth="1991-11-21", mrn=mrn)
    patients = client.resources("Patient")

    assert _ids(patients.search(identifier=f"{SYSTEM}|{mrn}").fetch()) == [patient.id]
    assert _ids(patients.search(name=family).fetch()) == [patient.id]
    assert _ids(patients.search(family=family, birthdate="1991-11-21").fetch()) == [patient.id]
    assert _ids(patients.search(family=family, birthdate="1991").fetch()) == [patient.id]
    assert patients.search(family=family, birthdate="1991-11-22").fetch() == []
    assert patients.search(identifier=f"{SYSTEM}|{_mrn()}").first() is None


def test_count_of_a_unique_identifier_is_one(client: SyncFHIRClient) -> None:
    mrn = _mrn()
    _created(client, family=_family(), mrn=mrn)

    assert client.resources("Patient").search(identifier=f"{SYSTEM}|{mrn}").count() == 1


def test_sort_by_last_updated_descending_lists_the_newest_first(client: SyncFHIRClient) -> None:
    family = _family()
    created = [_created(client, family=family, given=given).id for given in ("One", "Two", "Six")]

    found = client.resources("Patient").search(name=family).sort("-_lastUpdated").fetch()

    assert _ids(found) == list(reversed(created))


def test_sort_by_birthdate_lists_the_oldest_first(client: SyncFHIRClient) -> None:
    family = _family()
    births = ["1990-05-01", "1970-05-01", "1980-05-01"]
    by_birth = {_created(client, family=family, birth=b).id: b for b in births}

    found = client.resources("Patient").search(name=family).sort("birthdate").fetch()

    assert [r["birthDate"] for r in found] == sorted(births)
    assert set(_ids(found)) == set(by_birth)


def test_get_or_create_twice_returns_the_existing_patient(client: SyncFHIRClient) -> None:
    family, mrn = _family(), _mrn()
    search = client.resources("Patient").search(identifier=f"{SYSTEM}|{mrn}")

    first, first_created = search.get_or_create(_patient(client, family, mrn=mrn))
    second, second_created = search.get_or_create(_patient(client, family, mrn=mrn))

    assert first_created is True
    assert second_created is False
    assert second.id == first.id
    assert second["meta"]["versionId"] == "1"
    assert search.count() == 1
    assert _ids(search.fetch_all()) == [first.id]


def test_fetch_all_follows_next_links_over_pages_of_two(client: SyncFHIRClient) -> None:
    family = _family()
    created = {_created(client, family=family, given=f"Page{n}").id for n in "abcde"}
    # `name` (not `family`): an indexed parameter, so each page holds _count matches
    search = client.resources("Patient").search(name=family).limit(2)

    first_page = search.fetch_raw()
    everything = search.fetch_all()

    assert len(first_page["entry"]) == 2
    assert [link["relation"] for link in first_page["link"]].count("next") == 1
    assert len(everything) == 5
    assert set(_ids(everything)) == created


def test_encounter_create_read_and_search_by_patient(client: SyncFHIRClient) -> None:
    patient = _created(client, family=_family())
    encounter = client.resource(
        "Encounter",
        status="finished",
        **{"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
        subject={"reference": f"Patient/{patient.id}"},
        period={"start": "2025-03-04T09:00:00Z", "end": "2025-03-04T09:50:00Z"},
    )
    encounter.save()

    assert encounter.id
    read = client.reference("Encounter", encounter.id).to_resource()
    assert read["status"] == "finished"
    assert read["class"]["code"] == "AMB"
    assert read["subject"].reference == f"Patient/{patient.id}"
    assert read["period"]["start"].startswith("2025-03-04T09:00:00")
    found = client.resources("Encounter").search(patient=patient.id).fetch()
    assert _ids(found) == [encounter.id]
    by_subject = client.resources("Encounter").search(subject=patient.to_reference()).fetch()
    assert _ids(by_subject) == [encounter.id]


def test_condition_create_and_search_by_patient(client: SyncFHIRClient) -> None:
    patient = _created(client, family=_family())
    condition = client.resource(
        "Condition",
        clinicalStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        code={
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "35489007",
                    "display": "Depressive disorder",
                }
            ]
        },
        subject={"reference": f"Patient/{patient.id}"},
        onsetDateTime="2024-01-10",
    )
    condition.save()

    assert condition.id
    read = client.get("Condition", condition.id)
    assert read["code"]["coding"][0]["code"] == "35489007"
    assert read["subject"]["reference"] == f"Patient/{patient.id}"
    found = client.resources("Condition").search(patient=patient.id).fetch()
    assert _ids(found) == [condition.id]
