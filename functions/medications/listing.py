"""The medication list as a FHIR R4 `List` (`GET /fhir/R4/Patient/{id}/$medications`).

A `List` (code LOINC 10160-0, "History of Medication use Narrative"; mode
snapshot, status current) whose entries reference the patient's active and
on-hold orders. Each entry carries its row of the list (functions/medications/
rules.py `list_entry`) in one complex extension, `ROW_URL`, with a sub-extension
per column that has a value:

| sub-extension | value |
|---|---|
| `ingredient` | valueCoding: RxNorm code and ingredient name |
| `drugClass` | valueCoding: the class code and its FDA Established Pharmacologic Class |
| `schedule` | valueCode II, III, IV or V (absent: not controlled) |
| `dosage` | valueString (`dosageInstruction[0].text`) |
| `status` | valueCode active or on-hold |
| `authoredOn` | valueDateTime |
| `refills` | valueUnsignedInt |
| `overrideReason` | valueString |
"""

from __future__ import annotations

from typing import Any

from functions.medications.formulary import CLASSES, RXNORM

ROW_URL = "https://emr.example/fhir/StructureDefinition/medication-list-row"
CLASS_SYSTEM = "https://emr.example/fhir/CodeSystem/drug-class"
LOINC = "http://loinc.org"
MEDICATION_HISTORY = "10160-0"


def _coding(system: str, code: Any, display: Any) -> dict[str, Any] | None:
    if not isinstance(code, str):
        return None
    out = {"system": system, "code": code}
    return {**out, "display": display} if isinstance(display, str) else out


def _columns(row: dict[str, Any]) -> list[tuple[str, str, Any]]:
    drug_class = row.get("drugClass")
    return [
        ("ingredient", "valueCoding", _coding(RXNORM, row.get("rxcui"), row.get("ingredient"))),
        ("drugClass", "valueCoding",
         _coding(CLASS_SYSTEM, drug_class, CLASSES.get(str(drug_class)))),
        ("schedule", "valueCode", row.get("schedule")),
        ("dosage", "valueString", row.get("dosage")),
        ("status", "valueCode", row.get("status")),
        ("authoredOn", "valueDateTime", row.get("authoredOn")),
        ("refills", "valueUnsignedInt", row.get("refills")),
        ("overrideReason", "valueString", row.get("overrideReason")),
    ]  # fmt: skip


def _present(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, dict | int) or (isinstance(value, str) and value != "")


def row_extension(row: dict[str, Any]) -> dict[str, Any]:
    """One row as the complex extension of its List entry."""
    parts = [{"url": url, kind: value} for url, kind, value in _columns(row) if _present(value)]
    return {"url": ROW_URL, "extension": parts}


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"reference": f"MedicationRequest/{row.get('id')}"}
    if isinstance(row.get("ingredient"), str):
        item["display"] = row["ingredient"]
    return {"extension": [row_extension(row)], "item": item}


def medication_list(patient_id: str, rows: list[dict[str, Any]], at: str) -> dict[str, Any]:
    """The List resource of `rows` (already in display order), made at `at`."""
    out: dict[str, Any] = {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "title": "Medication list",
        "code": {"coding": [{"system": LOINC, "code": MEDICATION_HISTORY,
                             "display": "History of Medication use Narrative"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": at,
    }  # fmt: skip
    if rows:
        out["entry"] = [_entry(r) for r in rows]
    return out
