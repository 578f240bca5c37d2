"""The formulary (functions/medications/formulary.py): ingredients with their
sources, a lookup by RxCUI, and docs/medications.md carrying the generated table."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.medications.formulary import (
    CLASSES,
    FORMULARY,
    REGULATIONS,
    RXNORM,
    by_rxcui,
    markdown_table,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_carry_the_generated_formulary_table() -> None:
    doc = (ROOT / "docs" / "medications.md").read_text(encoding="utf-8")
    assert markdown_table() in doc


def test_the_table_lists_every_ingredient_with_its_sources() -> None:
    table = markdown_table()
    for entry in FORMULARY:
        row = next(line for line in table.splitlines() if line.startswith(f"| {entry.rxcui} |"))
        assert entry.ingredient in row
        assert f"searchTerm={entry.rxcui})" in row
        assert f"rxcui={entry.rxcui}&" in row
        assert entry.schedule_source in row


def test_rxcuis_and_ingredients_are_unique() -> None:
    assert len({e.rxcui for e in FORMULARY}) == len(FORMULARY)
    assert len({e.ingredient for e in FORMULARY}) == len(FORMULARY)
    assert all(e.rxcui.isdigit() for e in FORMULARY)


def test_every_row_has_a_known_class_and_schedule() -> None:
    for entry in FORMULARY:
        assert entry.drug_class in CLASSES
        assert entry.schedule is None or entry.schedule in REGULATIONS


@pytest.mark.parametrize(
    ("rxcui", "ingredient", "drug_class", "schedule", "regulation"),
    [
        ("36437", "sertraline", "sri", None, "not controlled"),
        ("6901", "methylphenidate", "cns-stimulant", "II", "21 CFR 1308.12"),
        ("1819", "buprenorphine", "partial-opioid-agonist", "III", "21 CFR 1308.13"),
        ("2598", "clonazepam", "benzodiazepine", "IV", "21 CFR 1308.14"),
        ("51272", "quetiapine", "atypical-antipsychotic", None, "not controlled"),
    ],
)
def test_a_known_ingredient_is_found_with_its_class_and_schedule(
    rxcui: str, ingredient: str, drug_class: str, schedule: str | None, regulation: str
) -> None:
    entry = by_rxcui(rxcui)
    assert entry is not None
    assert (entry.ingredient, entry.drug_class, entry.schedule) == (
        ingredient,
        drug_class,
        schedule,
    )
    assert entry.schedule_source == regulation
    assert entry.controlled is (schedule is not None)


@pytest.mark.parametrize("code", ["999999999", "36437 ", "", "sertraline"])
def test_a_code_that_is_not_a_formulary_ingredient_is_not_found(code: str) -> None:
    assert by_rxcui(code) is None


def test_rxnorm_system_is_the_fhir_uri() -> None:
    assert RXNORM == "http://www.nlm.nih.gov/research/umls/rxnorm"
