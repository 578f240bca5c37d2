from __future__ import annotations

import pytest

from functions.patients.search import parse_query, tokens_for
from models.blind_index import normalize_words, prefixes, token


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
    key = b"k" * 32
    patient = {
        "name": [{"family": "Smith", "given": ["Ann"]}],
        "birthDate": "1990-02-03",
        "identifier": [{"system": "urn:mrn", "value": "42"}],
    }
    toks = tokens_for(key, patient)
    for ns, value in (
        ("name", "smi"),
        ("name", "an"),
        ("birthdate", "1990"),
        ("birthdate", "1990-02"),
        ("birthdate", "1990-02-03"),
        ("identifier", "|42"),
        ("identifier", "urn:mrn|42"),
    ):
        assert token(key, ns, value) in toks.entries
    assert token(key, "family", "smi") in toks.all
    assert token(key, "family", "smi") not in toks.entries
    assert token(key, "given", "smi") not in toks.all


def test_query_leads_with_the_most_selective_term():
    key = b"k" * 32
    q = parse_query({"family": ["smi"], "identifier": ["urn:mrn|42"], "birthdate": ["1990"]})
    primary, filters = q.primary_and_filters(key)
    assert primary == token(key, "identifier", "urn:mrn|42")
    assert token(key, "family", "smi") in filters and token(key, "birthdate", "1990") in filters


def test_family_query_leads_with_the_name_partition_and_filters_on_family():
    key = b"k" * 32
    primary, filters = parse_query({"family": ["SMI"]}).primary_and_filters(key)
    assert primary == token(key, "name", "smi")
    assert filters == [token(key, "family", "smi")]
