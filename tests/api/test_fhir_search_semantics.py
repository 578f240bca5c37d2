"""FHIR R4 search rules (3.1.1), checked against hand-computed result sets.

Every data set is a handful of resources with known values in a chart (or with a
family name) no other test uses. Date semantics (R4 3.1.1.4.2 and 3.1.1.5.1): a
date value is a range set by its precision; `eq` the search range contains the
target's, `ne` it does not, `gt`/`lt` the target reaches above/below it, `ge`/`le`
either of those or `eq`, `sa`/`eb` the target lies wholly after/before it. A
Period without end reaches forever; values without a zone are UTC."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import next_path, patient_body

BASE = "/fhir/R4"
FORM = "application/x-www-form-urlencoded"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
WRITER = {"MedicationRequest": "prescriber"}


def _unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8]


def _create(api, body: dict[str, Any], tenant: str = "demo-clinic") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    kind = body["resourceType"]
    r = api.http.post(
        f"{BASE}/{kind}",
        headers=api.headers(WRITER.get(kind, "clinician"), tenant),
        body=json.dumps(body),
    )
    assert r.status_code == 201, r.body
    created: dict[str, Any] = json.loads(r.body)
    return created


def _get(api, kind: str, params: list[tuple[str, str]], **headers: str):  # type: ignore[no-untyped-def]
    role = WRITER.get(kind, "clinician")
    return api.http.get(f"{BASE}/{kind}?{urlencode(params)}", headers=api.headers(role, **headers))


def _bundle(api, kind: str, params: list[tuple[str, str]]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = _get(api, kind, params)
    assert r.status_code == 200, r.body
    bundle: dict[str, Any] = json.loads(r.body)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def _ids(api, kind: str, params: list[tuple[str, str]]) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["resource"]["id"] for e in _bundle(api, kind, params)["entry"]]


def _all_pages(api, kind: str, params: list[tuple[str, str]], limit: int = 50) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The ids of every page, following `next` links."""
    role = WRITER.get(kind, "clinician")
    pages: list[list[str]] = []
    path: str | None = f"{BASE}/{kind}?{urlencode(params)}"
    while path:
        r = api.http.get(path, headers=api.headers(role))
        assert r.status_code == 200, r.body
        page = json.loads(r.body)
        pages.append([e["resource"]["id"] for e in page["entry"]])
        path = next_path(page)
        assert len(pages) <= limit, "next links do not end"
    return pages


def _labels(found: list[str], named: dict[str, str]) -> set[str]:
    by_id = {rid: label for label, rid in named.items()}
    unexpected = [rid for rid in found if rid not in by_id]
    assert not unexpected, f"resources outside the data set: {unexpected}"
    assert len(found) == len(set(found)), "a resource appears twice"
    return {by_id[rid] for rid in found}


def _expression(r) -> list[str]:  # type: ignore[no-untyped-def]
    return [e for i in json.loads(r.body)["issue"] for e in i.get("expression", [])]


# --- data sets ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encounters(api):  # type: ignore[no-untyped-def]
    """E1 within one day; E2 spanning two days; E3 without end; E4 a year before.
    Created in this order (E1 oldest)."""
    pid = api.create(patient_body(_unique("Enc")))["id"]
    periods = {
        "E1": ("finished", {"start": "2021-03-10T09:00:00Z", "end": "2021-03-10T10:00:00Z"}),
        "E2": ("finished", {"start": "2021-03-11T22:00:00Z", "end": "2021-03-12T02:00:00Z"}),
        "E3": ("in-progress", {"start": "2021-03-15T08:00:00Z"}),
        "E4": ("finished", {"start": "2020-12-31T10:00:00Z", "end": "2020-12-31T11:00:00Z"}),
    }
    made = {}
    for label, (status, period) in periods.items():
        made[label] = _create(
            api,
            {
                "resourceType": "Encounter",
                "status": status,
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": f"Patient/{pid}"},
                "period": period,
            },
        )
    return pid, {label: r["id"] for label, r in made.items()}, made


ENCOUNTER_DATES = [
    # day precision: 2021-03-11 is [03-11T00:00Z, 03-12T00:00Z)
    ("2021-03-10", {"E1"}),
    ("eq2021-03-10", {"E1"}),
    ("2021-03-11", set()),
    ("ne2021-03-10", {"E2", "E3", "E4"}),
    ("gt2021-03-11", {"E2", "E3"}),
    ("lt2021-03-11", {"E1", "E4"}),
    ("ge2021-03-11", {"E2", "E3"}),
    ("ge2021-03-10", {"E1", "E2", "E3"}),
    ("le2021-03-11", {"E1", "E4"}),
    ("le2021-03-12", {"E1", "E2", "E4"}),
    ("sa2021-03-11", {"E3"}),
    ("sa2021-03-10", {"E2", "E3"}),
    ("eb2021-03-11", {"E1", "E4"}),
    ("eb2021-03-12", {"E1", "E4"}),
    # month and year precision
    ("2021-03", {"E1", "E2"}),
    ("eq2021", {"E1", "E2"}),
    ("2020", {"E4"}),
    ("ne2021", {"E3", "E4"}),
    ("gt2021", {"E3"}),
    ("lt2021", {"E4"}),
    ("sa2020", {"E1", "E2", "E3"}),
    ("eb2021", {"E4"}),
    ("ge2021-04", {"E3"}),
    # dateTime with a zone: 03:00+02:00 is 01:00Z (E2 ends 02:00Z; at 03:00Z it would not)
    ("gt2021-03-12T03:00:00+02:00", {"E2", "E3"}),
    ("gt2021-03-12T03:00:00Z", {"E3"}),
    ("lt2021-03-11T23:30:00-01:00", {"E1", "E2", "E4"}),
    ("eq2021-03-10T09:00:00Z", set()),
    # OR lists
    ("2021-03-10,2020", {"E1", "E4"}),
    ("sa2021-03-14,eb2021", {"E3", "E4"}),
]


@pytest.mark.parametrize(("value", "expected"), ENCOUNTER_DATES)
def test_encounter_date_is_the_period(api, encounters, value, expected):
    pid, named, _ = encounters
    found = _ids(api, "Encounter", [("patient", pid), ("date", value)])
    assert _labels(found, named) == expected, value


def test_encounter_date_and_status_together(api, encounters):
    pid, named, _ = encounters
    found = _ids(
        api, "Encounter", [("patient", pid), ("date", "ge2021-03-10"), ("status", "finished")]
    )
    assert _labels(found, named) == {"E1", "E2"}
    found = _ids(
        api, "Encounter", [("subject", f"Patient/{pid}"), ("status", "in-progress,cancelled")]
    )
    assert _labels(found, named) == {"E3"}
    assert _ids(
        api, "Encounter", [("patient", pid), ("date", "ge2021-03-10"), ("date", "lt2021-03-11")]
    ) == [named["E1"]]


@pytest.fixture(scope="module")
def observations(api):  # type: ignore[no-untyped-def]
    pid = api.create(patient_body(_unique("Obs")))["id"]

    def obs(code: str, category: str, value: float, unit: str, **effective: Any) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            **effective,
        }

    bodies = {
        "O1": obs("8867-4", "vital-signs", 72, "/min", effectiveDateTime="2022-05-01T10:00:00Z"),
        "O2": obs(
            "8867-4", "vital-signs", 88, "/min", effectiveDateTime="2022-05-03T10:00:00+05:00"
        ),
        "O3": obs(
            "44249-1",
            "survey",
            14,
            "{score}",
            effectivePeriod={"start": "2022-05-02T23:00:00Z", "end": "2022-05-03T01:00:00Z"},
        ),
    }
    return pid, {label: _create(api, body)["id"] for label, body in bodies.items()}


OBSERVATION_CRITERIA = [
    ([("code", f"{LOINC}|8867-4")], {"O1", "O2"}),
    ([("code", "44249-1")], {"O3"}),
    ([("code", "8867-4,44249-1")], {"O1", "O2", "O3"}),
    ([("code", "|8867-4")], set()),
    ([("code", f"{LOINC}|")], {"O1", "O2", "O3"}),
    ([("category", "survey")], {"O3"}),
    ([("category", f"{OBS_CATEGORY}|vital-signs")], {"O1", "O2"}),
    ([("value-quantity", "gt80")], {"O2"}),
    ([("value-quantity", "le72")], {"O1", "O3"}),
    ([("value-quantity", "lt72")], {"O3"}),
    ([("value-quantity", "ne72")], {"O2", "O3"}),
    ([("value-quantity", "ge14,eq88")], {"O1", "O2", "O3"}),
    ([("value-quantity", f"14|{UCUM}|{{score}}")], {"O3"}),
    ([("value-quantity", f"72|{UCUM}|/min")], {"O1"}),
    ([("value-quantity", f"88|{UCUM}|{{score}}")], set()),
    ([("code", "8867-4"), ("value-quantity", "gt80")], {"O2"}),
    ([("date", "2022-05-03")], {"O2"}),
    ([("date", "2022-05-02")], set()),
    ([("date", "2022-05")], {"O1", "O2", "O3"}),
    ([("date", "ge2022-05-02")], {"O2", "O3"}),
    ([("date", "eb2022-05-03")], {"O1"}),
    ([("date", "sa2022-05-02")], {"O2"}),
    ([("date", "2022-05-03T10:00:00+05:00")], {"O2"}),
    ([("date", "2022-05-03T05:00:00Z")], {"O2"}),
    ([("date", "2022-05-03T10:00:00Z")], set()),
    ([("date", "lt2022-05-03T00:30:00Z")], {"O1", "O3"}),
]


@pytest.mark.parametrize(("criteria", "expected"), OBSERVATION_CRITERIA)
def test_observation_criteria(api, observations, criteria, expected):
    pid, named = observations
    found = _ids(api, "Observation", [("patient", pid), *criteria])
    assert _labels(found, named) == expected, criteria


@pytest.fixture(scope="module")
def medication_requests(api):  # type: ignore[no-untyped-def]
    pid = api.create(patient_body(_unique("Med")))["id"]

    def med(status: str, intent: str, authored: str, code: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            # a reported record (history from elsewhere): what is exercised here is the engine,
            # not the prescribing rules (tests/api/test_medications_*.py)
            "reportedBoolean": True,
            "status": status,
            "intent": intent,
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": authored,
        }

    bodies = {
        "M1": med("active", "order", "2023-01-15", "197361"),
        "M2": med("stopped", "plan", "2023-02-01T12:00:00Z", "310965"),
        "M3": med("active", "order", "2023-02", "314076"),  # month precision
    }
    return pid, {label: _create(api, body)["id"] for label, body in bodies.items()}


MEDICATION_CRITERIA = [
    ([("authoredon", "eq2023-02")], {"M2", "M3"}),
    ([("authoredon", "2023-02-01")], {"M2"}),
    ([("authoredon", "ne2023-02-01")], {"M1", "M3"}),
    ([("authoredon", "gt2023-02-01")], {"M3"}),
    ([("authoredon", "lt2023-02-01")], {"M1"}),
    ([("authoredon", "ge2023-02-01")], {"M2", "M3"}),
    ([("authoredon", "le2023-02-01")], {"M1", "M2"}),
    ([("authoredon", "sa2023-01-31")], {"M2", "M3"}),
    ([("authoredon", "eb2023-02")], {"M1"}),
    ([("authoredon", "2023")], {"M1", "M2", "M3"}),
    ([("authoredon", "ge2023-02-01T12:00:00Z")], {"M2", "M3"}),
    ([("authoredon", "lt2023-02-01T13:00:00+01:00")], {"M1", "M3"}),
    ([("status", "active")], {"M1", "M3"}),
    ([("status", "active,stopped")], {"M1", "M2", "M3"}),
    ([("status", "draft")], set()),
    ([("intent", "plan")], {"M2"}),
    ([("intent", "order"), ("status", "active")], {"M1", "M3"}),
    ([("code", f"{RXNORM}|197361")], {"M1"}),
    ([("code", "|197361")], set()),
    ([("code", "197361,310965")], {"M1", "M2"}),
    ([("code", "310965"), ("authoredon", "2023-02")], {"M2"}),
]


@pytest.mark.parametrize(("criteria", "expected"), MEDICATION_CRITERIA)
def test_medication_request_criteria(api, medication_requests, criteria, expected):
    pid, named = medication_requests
    found = _ids(api, "MedicationRequest", [("patient", pid), *criteria])
    assert _labels(found, named) == expected, criteria


@pytest.fixture(scope="module")
def conditions(api):  # type: ignore[no-untyped-def]
    pid = api.create(patient_body(_unique("Cond")))["id"]

    def cond(status: str, system: str, code: str, **onset: Any) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            **onset,
        }

    bodies = {
        "C1": cond("active", SNOMED, "35489007", onsetDateTime="2019-07-04"),
        "C2": cond(
            "resolved",
            SNOMED,
            "197480006",
            onsetPeriod={"start": "2019-06-30", "end": "2019-07-01"},
        ),
        "C3": cond("active", "http://hl7.org/fhir/sid/icd-10-cm", "F32.9"),  # no onset
    }
    return pid, {label: _create(api, body)["id"] for label, body in bodies.items()}


CONDITION_CRITERIA = [
    ([("onset-date", "2019-07")], {"C1"}),
    ([("onset-date", "2019")], {"C1", "C2"}),
    ([("onset-date", "2019-07-04")], {"C1"}),
    ([("onset-date", "le2019-07-01")], {"C2"}),
    ([("onset-date", "ne2019-07-04")], {"C2"}),  # no onset: no value to compare
    ([("onset-date", "gt2019-06-30")], {"C1", "C2"}),
    ([("onset-date", "sa2019-06-30")], {"C1"}),
    ([("onset-date", "eb2019-07-04")], {"C2"}),
    ([("onset-date", "lt2019-06-30")], set()),
    ([("clinical-status", "active")], {"C1", "C3"}),
    ([("clinical-status", f"{CLINICAL}|resolved")], {"C2"}),
    ([("clinical-status", "|active")], set()),
    ([("code", f"{SNOMED}|")], {"C1", "C2"}),
    ([("code", "F32.9")], {"C3"}),
    ([("code", "35489007,F32.9")], {"C1", "C3"}),
    ([("code", f"{SNOMED}|F32.9")], set()),
    ([("clinical-status", "active"), ("onset-date", "2019")], {"C1"}),
]


@pytest.mark.parametrize(("criteria", "expected"), CONDITION_CRITERIA)
def test_condition_criteria(api, conditions, criteria, expected):
    pid, named = conditions
    found = _ids(api, "Condition", [("patient", pid), *criteria])
    assert _labels(found, named) == expected, criteria


def test_condition_sort_by_onset_puts_a_missing_onset_last(api, conditions):
    pid, named = conditions
    found = _ids(api, "Condition", [("patient", pid), ("_sort", "onset-date")])
    assert found == [named["C2"], named["C1"], named["C3"]]


@pytest.fixture(scope="module")
def people(api):  # type: ignore[no-untyped-def]
    """P1 family `Zed<tag>`; P2 `Zed<tag>son` (same start); P3 `zed<tag>` (case).
    Identifier value V with system S (P1) and without a system (P2); P3 has S|W."""
    tag = uuid.uuid4().hex[:8]
    family, system, value = f"Zed{tag}", f"urn:test:{tag}", f"V{tag}"

    def person(fam: str, given: str, birth: str, gender: str, ident: dict[str, str]) -> Any:
        body = {**patient_body(fam, given, birth), "gender": gender, "identifier": [ident]}
        return api.create(body)

    made = {
        "P1": person(family, "Amy", "1950-02-03", "female", {"system": system, "value": value}),
        "P2": person(family + "son", "Bob", "1950-02-27", "male", {"value": value}),
        "P3": person(
            family.lower(), "Cy", "1951-01-01", "female", {"system": system, "value": f"W{tag}"}
        ),
    }
    return {
        "family": family,
        "system": system,
        "value": value,
        "named": {label: p["id"] for label, p in made.items()},
        "made": made,
    }


PATIENT_DATES = [
    ("1950", {"P1", "P2"}),
    ("1950-02", {"P1", "P2"}),
    ("1950-02-03", {"P1"}),
    ("gt1950-02-03", {"P2", "P3"}),
    ("lt1950-02-27", {"P1"}),
    ("ge1950-02-27", {"P2", "P3"}),
    ("le1950-02-27", {"P1", "P2"}),
    ("ne1950-02-03", {"P2", "P3"}),
    ("sa1950", {"P3"}),
    ("eb1950-02-27", {"P1"}),
    ("eb1951", {"P1", "P2"}),
    ("1950-02-03,1951-01-01", {"P1", "P3"}),
    ("1950-02-04", set()),
]


@pytest.mark.parametrize(("value", "expected"), PATIENT_DATES)
def test_patient_birthdate(api, people, value, expected):
    found = _ids(api, "Patient", [("family", people["family"]), ("birthdate", value)])
    assert _labels(found, people["named"]) == expected, value


def test_patient_gender_and_name(api, people):
    family, named = people["family"], people["named"]

    def labels(*params: tuple[str, str]) -> set[str]:
        return _labels(_ids(api, "Patient", list(params)), named)

    assert labels(("family", family), ("gender", "female")) == {"P1", "P3"}
    assert labels(("family", family), ("gender", "male,female")) == {"P1", "P2", "P3"}
    assert labels(("family", family), ("gender", "other")) == set()
    assert labels(("name", family.upper())) == {"P1", "P2", "P3"}
    assert labels(("given", "amy"), ("family", family)) == {"P1"}
    assert labels(("name", f"{family} bo")) == {"P2"}


def test_family_exact_is_the_whole_value_case_sensitive_and_default_is_starts_with(api, people):
    family, named = people["family"], people["named"]

    def labels(name: str, value: str) -> set[str]:
        return _labels(_ids(api, "Patient", [(name, value)]), named)

    assert labels("family", family) == {"P1", "P2", "P3"}
    assert labels("family", family[:5].lower()) == {"P1", "P2", "P3"}
    assert labels("family:exact", family) == {"P1"}
    assert labels("family:exact", family.lower()) == {"P3"}
    assert labels("family:exact", family + "son") == {"P2"}
    assert labels("family:exact", family[:-1]) == set()
    assert labels("family:exact", family.upper()) == set()


def test_identifier_system_and_value_forms(api, people):
    system, value, named = people["system"], people["value"], people["named"]

    def labels(*params: tuple[str, str]) -> set[str]:
        return _labels(_ids(api, "Patient", list(params)), named)

    assert labels(("identifier", f"|{value}")) == {"P2"}  # explicitly no system
    assert labels(("identifier", value)) == {"P1", "P2"}  # any system
    assert labels(("identifier", f"{system}|{value}")) == {"P1"}
    assert labels(("identifier", f"urn:test:other|{value}")) == set()
    assert labels(("family", people["family"]), ("identifier", f"{system}|")) == {"P1", "P3"}
    everywhere = [
        i
        for page in _all_pages(api, "Patient", [("identifier", f"{system}|"), ("_count", "99")])
        for i in page
    ]
    assert _labels(everywhere, named) == {"P1", "P3"}


def test_id_lists_and_last_updated(api, people):
    named, made = people["named"], people["made"]
    assert _labels(_ids(api, "Patient", [("_id", f"{named['P1']},{named['P3']}")]), named) == {
        "P1",
        "P3",
    }
    assert _ids(api, "Patient", [("_id", "01NOBODY000000000000000000")]) == []
    second = made["P2"]["meta"]["lastUpdated"]
    family = people["family"]
    after = _ids(api, "Patient", [("family", family), ("_lastUpdated", f"ge{second}")])
    assert _labels(after, named) == {"P2", "P3"}
    before = _ids(api, "Patient", [("family", family), ("_lastUpdated", f"lt{second}")])
    assert _labels(before, named) == {"P1"}


def test_id_list_on_a_chart_type(api, encounters):
    pid, named, _ = encounters
    found = _ids(api, "Encounter", [("_id", f"{named['E1']},{named['E3']}")])
    assert _labels(found, named) == {"E1", "E3"}
    found = _ids(api, "Encounter", [("patient", pid), ("_id", f"{named['E2']},nope")])
    assert _labels(found, named) == {"E2"}


# --- sorting, paging, totals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("date", ["E4", "E1", "E2", "E3"]),
        ("-date", ["E3", "E2", "E1", "E4"]),
        ("-_lastUpdated", ["E4", "E3", "E2", "E1"]),
        ("_lastUpdated", ["E1", "E2", "E3", "E4"]),
    ],
)
def test_sort_pages_through_next_links_without_repeats_or_gaps(api, encounters, sort, expected):
    pid, named, _ = encounters
    pages = _all_pages(api, "Encounter", [("patient", pid), ("_sort", sort), ("_count", "2")])
    assert [len(p) for p in pages] == [2, 2]
    labels = {rid: label for label, rid in named.items()}
    assert [labels[rid] for page in pages for rid in page] == expected


def test_unsorted_paging_has_no_repeats_or_gaps(api, encounters):
    pid, named, _ = encounters
    pages = _all_pages(api, "Encounter", [("patient", pid), ("_count", "1")])
    found = [rid for page in pages for rid in page]
    assert sorted(found) == sorted(named.values())


@pytest.mark.parametrize(
    "params",
    [
        [("_total", "accurate")],
        [("_totalMethod", "count")],
        [("_total", "accurate"), ("_count", "2")],
    ],
)
def test_total_is_given_when_asked(api, encounters, params):
    pid, _, _ = encounters
    bundle = _bundle(api, "Encounter", [("patient", pid), *params])
    assert bundle["total"] == 4
    assert len(bundle["entry"]) == (2 if ("_count", "2") in params else 4)


@pytest.mark.parametrize("params", [[("_summary", "count")], [("_count", "0")]])
def test_count_only_gives_the_total_and_no_entries(api, encounters, params):
    pid, _, _ = encounters
    bundle = _bundle(api, "Encounter", [("patient", pid), ("status", "finished"), *params])
    assert bundle["total"] == 3
    assert bundle.get("entry", []) == []
    assert not [link for link in bundle["link"] if link["relation"] == "next"]


def test_a_count_over_the_maximum_is_capped_at_99_with_a_next_link(api):
    pid = api.create(patient_body(_unique("Many")))["id"]
    made = set()
    for n in range(100):
        made.add(
            _create(
                api,
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "valueQuantity": {"value": n, "unit": "/min", "system": UCUM, "code": "/min"},
                },
            )["id"]
        )
    pages = _all_pages(api, "Observation", [("patient", pid), ("_count", "500")])
    assert len(pages[0]) == 99 and len(pages) == 2
    assert sorted(i for page in pages for i in page) == sorted(made)


def test_post_search_with_a_form_body_equals_the_get(api, encounters):
    pid, named, _ = encounters
    get = _bundle(api, "Encounter", [("patient", pid), ("status", "finished")])
    r = api.http.post(
        f"{BASE}/Encounter/_search",
        headers={**api.headers(), "Content-Type": FORM},
        body=urlencode([("patient", pid), ("status", "finished")]),
    )
    assert r.status_code == 200, r.body
    post = json.loads(r.body)
    assert [e["resource"] for e in post["entry"]] == [e["resource"] for e in get["entry"]]
    assert _labels([e["resource"]["id"] for e in post["entry"]], named) == {"E1", "E2", "E4"}
    assert post.get("total") == get.get("total")


# --- Prefer and conditional create ----------------------------------------------------------


def _encounter_body(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }


def test_prefer_return_minimal_operation_outcome_and_representation(api):
    pid = api.create(patient_body(_unique("Prefer")))["id"]
    body = json.dumps(_encounter_body(pid))
    minimal = api.http.post(
        f"{BASE}/Encounter", body=body, headers=api.headers(Prefer="return=minimal")
    )
    assert minimal.status_code == 201 and minimal.body in (b"", "", None)
    assert "/fhir/R4/Encounter/" in minimal.headers["Location"]
    assert minimal.headers["ETag"] == 'W/"1"'
    outcome = api.http.post(
        f"{BASE}/Encounter", body=body, headers=api.headers(Prefer="return=OperationOutcome")
    )
    assert outcome.status_code == 201 and "Location" in outcome.headers
    assert json.loads(outcome.body)["resourceType"] == "OperationOutcome"
    default = api.http.post(f"{BASE}/Encounter", body=body, headers=api.headers())
    represented = api.http.post(
        f"{BASE}/Encounter", body=body, headers=api.headers(Prefer="return=representation")
    )
    for r in (default, represented):
        assert r.status_code == 201
        created = json.loads(r.body)
        assert created["resourceType"] == "Encounter"
        assert r.headers["Location"].endswith(f"/Encounter/{created['id']}/_history/1")
    rid = json.loads(default.body)["id"]
    updated = api.http.put(
        f"{BASE}/Encounter/{rid}",
        body=json.dumps({**json.loads(default.body), "status": "arrived"}),
        headers=api.headers(Prefer="return=minimal", If_Match='W/"1"'),
    )
    assert updated.status_code == 200 and updated.body in (b"", "", None)
    assert updated.headers["ETag"] == 'W/"2"'
    assert len(_ids(api, "Encounter", [("patient", pid)])) == 4


@pytest.mark.parametrize("how", ["header", "query"])
def test_conditional_create_returns_the_match_instead_of_a_second(api, how):
    system, value = f"urn:test:{uuid.uuid4().hex[:8]}", _unique("MRN")
    criteria = f"identifier={system}|{value}"
    body = json.dumps(
        {**patient_body(_unique("Cond")), "identifier": [{"system": system, "value": value}]}
    )

    def post():  # type: ignore[no-untyped-def]
        if how == "header":
            return api.http.post(
                f"{BASE}/Patient", body=body, headers=api.headers(If_None_Exist=criteria)
            )
        return api.http.post(f"{BASE}/Patient?{criteria}", body=body, headers=api.headers())

    first = post()
    assert first.status_code == 201, first.body
    again = post()
    assert again.status_code == 200, again.body
    assert json.loads(again.body)["id"] == json.loads(first.body)["id"]
    assert json.loads(again.body) == json.loads(first.body)
    assert _ids(api, "Patient", [("identifier", f"{system}|{value}")]) == [
        json.loads(first.body)["id"]
    ]


def test_conditional_create_with_two_matches_is_412_and_creates_nothing(api):
    system, value = f"urn:test:{uuid.uuid4().hex[:8]}", _unique("MRN")
    body = {**patient_body(_unique("Twice")), "identifier": [{"system": system, "value": value}]}
    api.create(body)
    api.create(body)
    r = api.http.post(
        f"{BASE}/Patient",
        body=json.dumps(body),
        headers=api.headers(If_None_Exist=f"identifier={system}|{value}"),
    )
    assert r.status_code == 412, r.body
    assert len(_ids(api, "Patient", [("identifier", f"{system}|{value}")])) == 2


@pytest.mark.parametrize(
    "query", ["_format=json", "_pretty=true", "_format=application/fhir%2Bjson"]
)
def test_a_create_whose_url_carries_only_general_parameters_is_a_plain_create(api, query):
    """_format and _pretty apply to every interaction (R4 3.1.0.1.10): they are not
    conditional-create criteria, so the same body posted twice makes two resources."""
    pid = api.create(patient_body(_unique("Plain")))["id"]
    body = json.dumps(_encounter_body(pid))
    for _ in range(2):
        r = api.http.post(f"{BASE}/Encounter?{query}", body=body, headers=api.headers())
        assert r.status_code == 201, (query, r.status_code, r.body)
    assert len(_ids(api, "Encounter", [("patient", pid)])) == 2


# --- what is refused ------------------------------------------------------------------------


def test_xml_is_not_acceptable(api, encounters):
    pid, named, _ = encounters
    read = f"{BASE}/Encounter/{named['E1']}"
    for path, headers in (
        (f"{BASE}/Encounter?patient={pid}&_format=xml", api.headers()),
        (f"{read}?_format=xml", api.headers()),
        (f"{BASE}/Encounter?patient={pid}", api.headers(Accept="application/fhir+xml")),
        (read, api.headers(Accept="application/fhir+xml")),
    ):
        r = api.http.get(path, headers=headers)
        assert r.status_code == 406, (path, r.status_code)
        assert json.loads(r.body)["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_include", "Encounter:subject"),
        ("_revinclude", "Condition:encounter"),
        ("_elements", "status"),
        ("subject.name", "Smith"),
        ("subject:Patient.name", "Smith"),
        ("date:missing", "true"),
        ("status:missing", "true"),
        ("date", "ap2021-03-10"),
        ("bogus", "1"),
    ],
)
def test_unsupported_search_features_are_400_naming_the_parameter(api, encounters, name, value):
    pid, _, _ = encounters
    r = _get(api, "Encounter", [("patient", pid), (name, value)])
    assert r.status_code == 400, (name, r.status_code, r.body)
    (expression,) = _expression(r)
    assert expression.startswith("Encounter.search.")
    assert name.partition(":")[0].partition(".")[0] in expression


def test_ap_prefix_is_refused_on_every_date_parameter(api, people, medication_requests):
    for kind, name in (
        ("Patient", "birthdate"),
        ("MedicationRequest", "authoredon"),
        ("Condition", "onset-date"),
        ("Observation", "date"),
    ):
        r = _get(api, kind, [(name, "ap2020-01-01")])
        assert r.status_code == 400, (kind, r.body)
        assert _expression(r) == [f"{kind}.search.{name}"]


def test_searching_another_tenants_patient_finds_nothing(api):
    theirs = api.create(patient_body(_unique("Theirs")), tenant="other-clinic")["id"]
    their_encounter = _create(api, _encounter_body(theirs), tenant="other-clinic")["id"]
    assert _bundle(api, "Encounter", [("_id", their_encounter)])["entry"] == []
    for params in (
        [("patient", theirs)],
        [("subject", f"Patient/{theirs}")],
        [("patient", theirs), ("_total", "accurate")],
    ):
        bundle = _bundle(api, "Encounter", params)
        assert bundle["entry"] == [], params
    own = api.http.get(
        f"{BASE}/Encounter?patient={theirs}", headers=api.headers(tenant="other-clinic")
    )
    assert len(json.loads(own.body)["entry"]) == 1
