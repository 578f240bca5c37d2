from __future__ import annotations

import pytest

from functions.engine import registry, search
from models.blind_index import normalize_words, prefixes, token

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Smith", ["smith"]),
        ("José O'Hara-Smith", ["jose", "ohara", "smith"]),
        ("  ÅSA  von   Trier ", ["asa", "von", "trier"]),
        ("Müller", ["muller"]),
        ("Beatty304", ["beatty304"]),
        ("--", []),
    ],
)
def test_normalization_is_case_and_accent_insensitive(text, words):
    assert normalize_words(text) == words


def test_prefixes_start_at_two_characters_and_stop_at_twenty():
    assert prefixes("smith") == ["sm", "smi", "smit", "smith"]
    assert prefixes("a") == ["a"]
    assert prefixes("x" * 30)[-1] == "x" * 20


def test_tokens_depend_on_the_tenant_key_and_namespace():
    assert token(b"k1", "name", "smi") == token(b"k1", "name", "smi")
    assert token(b"k1", "name", "smi") != token(b"k2", "name", "smi")
    assert token(b"k1", "name", "smi") != token(b"k1", "family", "smi")
    assert len(token(b"k1", "name", "smi")) == 22


def test_patient_tokens_cover_names_dates_and_identifiers():
    patient = {
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "birthDate": "1990-02-03",
        "identifier": [{"system": "urn:mrn", "value": "42"}],
    }
    toks = search.index(registry.require("Patient"), KEY, patient)
    for ns, value in (
        ("Patient.name", "smi"),
        ("Patient.name", "an"),
        ("Patient.birthdate", "1990"),
        ("Patient.birthdate", "1990-02"),
        ("Patient.birthdate", "1990-02-03"),
        ("Patient.identifier:code", "42"),
        ("Patient.identifier", "urn:mrn|42"),
    ):
        assert token(KEY, ns, value) in toks.entries, (ns, value)
    assert token(KEY, "Patient.family", "smi") in toks.all
    assert token(KEY, "Patient.family", "smi") not in toks.entries
    assert token(KEY, "Patient.given", "smi") not in toks.all
    assert token(KEY, "Patient.identifier:nosys", "42") not in toks.all  # it has a system
    assert token(KEY, "Patient.identifier:system", "urn:mrn") in toks.all


def test_tokens_carry_the_resource_type():
    practitioner = {"name": [{"family": "Smith"}], "identifier": [{"value": "42"}]}
    patient_toks = search.index(registry.require("Patient"), KEY, practitioner)
    practitioner_toks = search.index(registry.require("Practitioner"), KEY, practitioner)
    assert patient_toks.all and practitioner_toks.all
    assert not patient_toks.all & practitioner_toks.all


def test_query_leads_with_the_most_selective_term():
    q = search.parse(
        registry.require("Patient"),
        {"family": ["smi"], "identifier": ["urn:mrn|42"], "birthdate": ["1990"]},
    )
    lead = q.leading_term()
    assert lead == ("Patient.identifier", "urn:mrn|42")
    groups = q.filter_groups(KEY, lead)
    assert [token(KEY, "Patient.family", "smi")] in groups
    assert [token(KEY, "Patient.birthdate", "1990")] in groups


def test_family_query_leads_with_the_name_partition_and_filters_on_family():
    q = search.parse(registry.require("Patient"), {"family": ["SMI"]})
    lead = q.leading_term()
    assert lead == ("Patient.name", "smi")
    assert q.filter_groups(KEY, lead) == [[token(KEY, "Patient.family", "smi")]]


def test_no_system_identifier_leads_with_the_code_and_filters_on_no_system():
    q = search.parse(registry.require("Patient"), {"identifier": ["|42"]})
    lead = q.leading_term()
    assert lead == ("Patient.identifier:code", "42")
    assert q.filter_groups(KEY, lead) == [[token(KEY, "Patient.identifier:nosys", "42")]]
    assert not q.matches({"identifier": [{"system": "urn:mrn", "value": "42"}]})
    assert q.matches({"identifier": [{"value": "42"}]})


def test_or_values_filter_as_one_group_and_never_lead():
    q = search.parse(registry.require("Patient"), {"gender": ["male,female"]})
    assert q.leading_term() is None
    (group,) = q.filter_groups(KEY, None)
    assert sorted(group) == sorted(token(KEY, "Patient.gender:code", g) for g in ("male", "female"))
