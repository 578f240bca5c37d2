"""The API driven by the SMART on FHIR Python client (fhirclient, R4, unmodified)
over real HTTP.

What fhirclient sends (fhirclient 4.4.0, read from its source and checked on the
wire): one requests.Session; `Accept: application/fhir+json`, `Accept-Charset:
UTF-8` and, with an OAuth2 access token in its state, `Authorization: Bearer ...`.
- create(server): POST {base}/Patient, `Content-type: application/fhir+json`, the
  model's JSON as body, no Prefer; returns the response body's JSON (the model is
  not updated; Location and ETag are not read).
- read(id, server): GET {base}/Patient/<id>; the body is parsed strictly into the
  model (an unknown element fails).
- update(server): PUT {base}/Patient/<id>, the whole model as body, no If-Match;
  returns the response body's JSON.
- where(struct).perform_resources(server): GET {base}/Patient?k=v (values
  quote_plus-encoded: ":" as %3A, "|" as %7C, " " as +), then every Bundle `next`
  link, which must be an absolute http(s) URL. perform_resources() itself is
  deprecated in favour of perform_resources_iter() (a DeprecationWarning).
- The base URL in a restored state must end with "/": "Patient" is joined onto it
  with urljoin (FHIRClient(settings=...) adds the "/" itself, a state does not).
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.coding import Coding
from fhirclient.models.encounter import Encounter
from fhirclient.models.fhirdate import FHIRDate
from fhirclient.models.fhirdatetime import FHIRDateTime
from fhirclient.models.fhirreference import FHIRReference
from fhirclient.models.humanname import HumanName
from fhirclient.models.identifier import Identifier
from fhirclient.models.patient import Patient
from fhirclient.models.period import Period
from fhirclient.server import (
    FHIRNotFoundException,
    FHIRPermissionDeniedException,
    FHIRUnauthorizedException,
)

from tests.clients.conftest import FhirServer, print_exchange

SYSTEM = "urn:emr-tests:fhirclient"
T = TypeVar("T")

pytestmark = pytest.mark.filterwarnings(
    "ignore:perform_resources\\(\\) is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def server(fhir_server: FhirServer) -> Any:
    """The FHIRServer of a FHIRClient restored from a state holding an OAuth2 access
    token (the clinician's ID token): it signs every request with it."""
    smart = smart_client.FHIRClient(
        state={
            "app_id": "emr-tests",
            "server": {
                "base_uri": fhir_server.base_url + "/",
                "auth_type": "oauth2",
                "auth": {"access_token": fhir_server.token("clinician")},
            },
        }
    )
    assert smart.ready
    smart.server.session.hooks["response"].append(print_exchange)
    return smart.server


def answered(call: Callable[[], T]) -> T:
    """The call's result; an HTTP error fails the test with its status and body."""
    errors = (
        requests.HTTPError,
        FHIRNotFoundException,
        FHIRPermissionDeniedException,
        FHIRUnauthorizedException,
    )
    try:
        return call()
    except errors as exc:
        r = exc.response
        if r is None:
            raise
        pytest.fail(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:2000]}")


def _family() -> str:
    return "Fcl" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def _patient(family: str, given: str = "Alex", birth: str = "1985-06-15", mrn: str = "") -> Any:
    patient = Patient()
    name = HumanName()
    name.family = family
    name.given = [given]
    patient.name = [name]
    patient.birthDate = FHIRDate(birth)
    patient.gender = "female"
    identifier = Identifier()
    identifier.system = SYSTEM
    identifier.value = mrn or uuid.uuid4().hex
    patient.identifier = [identifier]
    return patient


def _create(server: Any, patient: Any) -> str:
    body = answered(lambda: patient.create(server))
    assert body is not None, "create answered without a body"
    assert body["resourceType"] == patient.resource_type
    assert body["meta"]["versionId"] == "1"
    return str(body["id"])


def _search(server: Any, model: Any, struct: dict[str, str]) -> list[str]:
    found = answered(lambda: model.where(struct=struct).perform_resources(server))
    return [r.id for r in found]


def test_create_read_and_update_without_if_match(server: Any) -> None:
    family, mrn = _family(), uuid.uuid4().hex
    pid = _create(server, _patient(family, given="Robin", birth="1979-02-03", mrn=mrn))

    read = answered(lambda: Patient.read(pid, server))
    assert read.id == pid
    assert read.meta.versionId == "1"
    assert read.name[0].family == family
    assert read.name[0].given == ["Robin"]
    assert read.birthDate.isostring == "1979-02-03"
    assert read.gender == "female"
    assert [(i.system, i.value) for i in read.identifier] == [(SYSTEM, mrn)]

    read.gender = "other"
    read.name[0].given = ["Robin", "Kai"]
    updated = answered(lambda: read.update(server))  # PUT Patient/<id>, no If-Match

    assert updated is not None, "update answered without a body"
    assert updated["meta"]["versionId"] == "2"
    again = answered(lambda: Patient.read(pid, server))
    assert again.meta.versionId == "2"
    assert again.gender == "other"
    assert again.name[0].given == ["Robin", "Kai"]


def test_search_by_identifier_family_and_birthdate(server: Any) -> None:
    family, mrn = _family(), uuid.uuid4().hex
    pid = _create(server, _patient(family, birth="1991-11-21", mrn=mrn))

    assert _search(server, Patient, {"identifier": f"{SYSTEM}|{mrn}"}) == [pid]
    assert _search(server, Patient, {"name": family}) == [pid]
    assert _search(server, Patient, {"family": family, "birthdate": "1991-11-21"}) == [pid]
    assert _search(server, Patient, {"family": family, "birthdate": "1991-11-22"}) == []


def test_search_follows_next_links(server: Any) -> None:
    family = _family()
    created = {_create(server, _patient(family, given=f"Page{n}")) for n in "abc"}

    found = _search(server, Patient, {"name": family, "_count": "2"})

    assert len(found) == 3
    assert set(found) == created


def test_encounter_create_and_search_by_patient(server: Any) -> None:
    pid = _create(server, _patient(_family()))
    encounter = Encounter()
    encounter.status = "finished"
    ambulatory = Coding()
    ambulatory.system = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    ambulatory.code = "AMB"
    encounter.class_fhir = ambulatory
    subject = FHIRReference()
    subject.reference = f"Patient/{pid}"
    encounter.subject = subject
    period = Period()
    period.start = FHIRDateTime("2025-03-04T09:00:00Z")
    period.end = FHIRDateTime("2025-03-04T09:50:00Z")
    encounter.period = period

    eid = _create(server, encounter)

    read = answered(lambda: Encounter.read(eid, server))
    assert read.status == "finished"
    assert read.class_fhir.code == "AMB"
    assert read.subject.reference == f"Patient/{pid}"
    assert _search(server, Encounter, {"patient": pid}) == [eid]
    assert _search(server, Encounter, {"subject": f"Patient/{pid}"}) == [eid]
