"""ICD-10-CM codes on Condition.code (functions/problems/icd10.py): billable codes
of the CMS code set pass, headers, unknown and undotted codes are refused at their
own coding, other systems are not looked at, and the code set loads lazily."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from functions.common.errors import Invalid
from functions.engine.types import CONDITION
from functions.engine.validation import validate_resource
from functions.problems.icd10 import SYSTEM, code_set, condition_rules, dotted

ROOT = Path(__file__).resolve().parents[2]
SNOMED = "http://snomed.info/sct"


def _condition(*codings: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        "code": {"coding": [{"system": s, "code": c} for s, c in codings]},
    }


def _issues(*codings: tuple[str, str]) -> list[tuple[str, list[str]]]:
    return [(i.diagnostics, i.expression) for i in condition_rules(_condition(*codings))]


@pytest.mark.parametrize(
    "code",
    ["F32.1", "F32.A", "F41.1", "F43.10", "F43.12", "F90.0", "Z63.0", "S00.01XA", "U07.1"],
)
def test_a_billable_code_passes(code: str) -> None:
    assert _issues((SYSTEM, code)) == []


@pytest.mark.parametrize(
    ("code", "hint"),
    [("F32", "F32.0, F32.1, F32.2"), ("F43.1", "F43.10, F43.11, F43.12"), ("F41", "F41.0")],
)
def test_a_category_header_is_refused_with_billable_codes_below_it(code: str, hint: str) -> None:
    [(message, expression)] = _issues((SYSTEM, code))
    assert expression == ["Condition.code.coding[0].code"]
    assert f"{code} is a category header" in message and hint in message


@pytest.mark.parametrize("code", ["Z99.999", "F32.9999", "F99.9", "f32.1", "F3", "F32.", "32.1"])
def test_an_unknown_code_is_refused_naming_it(code: str) -> None:
    [(message, expression)] = _issues((SYSTEM, code))
    assert expression == ["Condition.code.coding[0].code"]
    assert message.startswith(f"{code} is not an ICD-10-CM code") and "FY2026" in message


def test_the_undotted_form_is_refused_with_the_dotted_one_to_write() -> None:
    [(message, expression)] = _issues((SYSTEM, "F321"))
    assert expression == ["Condition.code.coding[0].code"]
    assert "dotted form: F32.1, not F321" in message
    # not normalised: an undotted string that is no code at all is simply unknown
    [(unknown, _)] = _issues((SYSTEM, "Z99999"))
    assert unknown.startswith("Z99999 is not an ICD-10-CM code")


def test_free_text_sent_as_a_code_is_not_echoed() -> None:
    secret = "Jane Roe overdose 2024"
    [(message, _)] = _issues((SYSTEM, secret))
    assert "Jane" not in message and message.startswith("The code is not an ICD-10-CM code")


def test_other_systems_and_codings_without_a_code_are_left_alone() -> None:
    assert _issues((SNOMED, "35489007"), (SNOMED, "F32"), ("urn:other", "Z99.999")) == []
    body = _condition()
    body["code"] = {"coding": [{"system": SYSTEM, "display": "Depression"}], "text": "Depression"}
    assert condition_rules(body) == []
    assert condition_rules({"resourceType": "Condition", "subject": body["subject"]}) == []


def test_each_coding_is_checked_with_its_own_index() -> None:
    issues = _issues((SNOMED, "35489007"), (SYSTEM, "F32"), (SYSTEM, "F32.1"), (SYSTEM, "Z99.999"))
    assert [e for _, e in issues] == [
        ["Condition.code.coding[1].code"],
        ["Condition.code.coding[3].code"],
    ]


def test_the_condition_declaration_runs_the_rules_as_a_400() -> None:
    ok = validate_resource("Condition", _condition((SYSTEM, "F41.1")), path_id=None,
                           rules=CONDITION.rules)  # fmt: skip
    assert ok["code"]["coding"][0]["code"] == "F41.1"
    with pytest.raises(Invalid) as caught:
        validate_resource("Condition", _condition((SYSTEM, "F32")), path_id=None,
                          rules=CONDITION.rules)  # fmt: skip
    assert caught.value.status == 400
    assert [i.expression for i in caught.value.issues] == [["Condition.code.coding[0].code"]]


def test_dotted() -> None:
    assert [dotted(c) for c in ("F32", "F321", "F4310", "S0001XA")] == [
        "F32", "F32.1", "F43.10", "S00.01XA"
    ]  # fmt: skip


def test_the_code_set_is_fy2026() -> None:
    codes = code_set()
    assert len(codes.billable) == 74_719  # CMS FY2026 (April 1, 2026 update): billable codes
    assert {"F32A", "F321", "F4310"} <= codes.billable and "F32" not in codes.billable
    assert "F32" in codes.known and "F30-F39" not in codes.known


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.strip()


def test_importing_the_app_loads_no_code_set() -> None:
    loaded = _run(
        """
        import sys
        import app
        from functions.engine import types
        print(sorted(m for m in sys.modules if "icd" in m.lower() or "problems" in m))
        import functions.problems.icd10 as icd10
        print(sorted(m for m in sys.modules if "icd" in m.lower() and m != icd10.__name__),
              icd10.code_set.cache_info().currsize)
        """
    )
    assert loaded.splitlines() == ["[]", "[] 0"]


def test_the_code_set_agrees_with_the_package_api_on_every_code() -> None:
    """The billable set read from the code list equals the package's own leaves (its
    tree, built from the tabular XML): same codes, same billable ones."""
    out = _run(
        """
        import json
        import simple_icd_10_cm as cm
        from functions.problems.icd10 import code_set
        codes = code_set()
        known = {c for c in cm.get_all_codes(with_dots=False) if cm.is_category_or_subcategory(c)}
        leaves = {c for c in known if cm.is_leaf(c)}
        print(json.dumps([known == codes.known, leaves == codes.billable,
                          cm.is_leaf("F32.1"), cm.is_leaf("F32")]))
        """
    )
    assert json.loads(out) == [True, True, True, False]
