"""ICD-10-CM diagnosis codes on Condition.code, checked against the CMS code set.

A coding of FHIR's ICD-10-CM system (`http://hl7.org/fhir/sid/icd-10-cm`) must
carry a billable code: one with no subdivision in the code set (`F32.1`,
`F32.A`, `F43.10`). A category header (`F32`, `F43.1`) names a group of
diagnoses, not one, and is refused with its first billable codes as a hint; a
code not in the code set is refused. Codings of other systems (SNOMED CT from
imported records) are kept as they are.

Codes are written in the dotted form, as CMS publishes them and as FHIR's
ICD-10-CM system uses them (`F32.1`). The undotted form (`F321`) is refused
with the dotted one to write, not normalised: the server stores what the
clinician sent, and a search for `code=...|F32.1` must find every F32.1.
Codes are case-sensitive (the system is), so `f32.1` is unknown.

The code set is the CMS ICD-10-CM code list shipped by the pinned
`simple-icd-10-cm` package (the April 1, 2026 update of FY2026). It is read
lazily, on the first check of an ICD-10-CM coding in a process, straight from
the package's data file: importing the package itself parses its 9.7 MB
tabular XML into a tree (about 3 s and 185 MB), while the list gives the same
codes and the same billable set (a code is billable when it is a leaf of the
package's tree, i.e. no other code extends it; tests/unit/test_icd10.py checks
both agree on every code) in a fraction of that. Diagnostics name the element
and the submitted code, as the rule is about that code, and nothing else of
the body.
"""

from __future__ import annotations

import bisect
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from functions.common.errors import Issue

SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
PACKAGE = "simple_icd_10_cm"
CODE_SET = "code set FY2026, April 1, 2026 update"
_HINTS = 3  # billable codes named under a refused header

# A letter, a digit, a digit or letter; then up to 4 more after the dot (up to 7 in all).
_DOTTED = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?")
_UNDOTTED = re.compile(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}")
# What may be repeated in a diagnostic: something shaped like a code. Free text sent
# as a code (a name, a note) is not echoed.
_ECHOABLE = re.compile(r"[A-Za-z0-9.]{1,8}")


@dataclass(frozen=True)
class CodeSet:
    """The code set, codes without their dot: every category and subcategory, and
    the billable ones (sorted, to list a header's billable codes by prefix)."""

    known: frozenset[str]
    billable: frozenset[str]
    billable_sorted: tuple[str, ...]

    def billable_under(self, undotted: str, limit: int) -> list[str]:
        i = bisect.bisect_left(self.billable_sorted, undotted)
        out: list[str] = []
        while i < len(self.billable_sorted) and len(out) < limit:
            code = self.billable_sorted[i]
            if not code.startswith(undotted):
                break
            out.append(dotted(code))
            i += 1
        return out


def dotted(undotted: str) -> str:
    """`F321` -> `F32.1`; a 3-character category stays as it is."""
    return undotted if len(undotted) <= 3 else f"{undotted[:3]}.{undotted[3:]}"


def _code_list_file() -> Path:
    # find_spec locates the package without importing it (its import parses the XML)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{PACKAGE} is not installed (requirements.txt)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = sorted(folder.glob("code-list-*.txt"))
    if len(found) != 1:
        raise RuntimeError(f"expected one code list in {folder}, found {len(found)}")
    return found[0]


@cache
def code_set() -> CodeSet:
    """Load the code set once per process (the first ICD-10-CM coding pays)."""
    known: set[str] = set()
    for line in _code_list_file().read_text(encoding="utf-8").splitlines():
        code = line.split(" ", 1)[0].strip()
        # chapters ("5") and blocks ("F30-F39") are in the list too: not codes to diagnose with
        if code and not code.isdigit() and "-" not in code:
            known.add(code)
    extended = {code[:n] for code in known for n in range(3, len(code))}
    billable = known - extended
    return CodeSet(frozenset(known), frozenset(billable), tuple(sorted(billable)))


def _code_issue(code: str, element: str) -> Issue | None:
    codes = code_set()
    if _DOTTED.fullmatch(code):
        undotted = code.replace(".", "")
        if undotted in codes.billable:
            return None
        if undotted in codes.known:
            hint = ", ".join(codes.billable_under(undotted, _HINTS))
            message = (
                f"ICD-10-CM {code} is a category header, not a billable code; use a code "
                f"below it (e.g. {hint})."
            )
            return Issue("code-invalid", message, [element])
    elif _UNDOTTED.fullmatch(code) and code in codes.known:
        message = f"Write ICD-10-CM codes in the dotted form: {dotted(code)}, not {code}."
        return Issue("code-invalid", message, [element])
    named = code if _ECHOABLE.fullmatch(code) else "The code"
    return Issue("code-invalid", f"{named} is not an ICD-10-CM code ({CODE_SET}).", [element])


def condition_rules(body: dict[str, Any]) -> list[Issue]:
    """The Condition's own rules, after the generic validation: each ICD-10-CM
    coding of Condition.code carries a billable code of the code set."""
    concept = body.get("code")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    issues: list[Issue] = []
    for i, coding in enumerate(codings if isinstance(codings, list) else []):
        if not isinstance(coding, dict) or coding.get("system") != SYSTEM:
            continue
        code = coding.get("code")
        if not isinstance(code, str):
            continue  # a coding without a code (display only) says nothing to check
        issue = _code_issue(code, f"Condition.code.coding[{i}].code")
        if issue is not None:
            issues.append(issue)
    return issues
