"""What billing reads about an encounter: whether it is ready to bill (finished, its
note signed and co-signed where required) and the facts the CPT rules need.

Reads only, all consistent: the Encounter (GetItem), its notes (one Query on the
chart, filtered by the encounter), its rendering Practitioner and its diagnoses'
Conditions (one BatchGetItem). Plain values come back; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.billing.cpt import Facts
from functions.encounters.workflow import (
    INTERACTIVE_COMPLEXITY_URL,
    MDM_URL,
    PATIENT_PRESENT_URL,
    PSYCHOTHERAPY_MINUTES_URL,
    SERVICE_TYPE_SYSTEM,
)
from functions.engine import registry, service
from functions.engine import values as v
from functions.notes import documents, signing
from models import keys, resources
from models.resources import Address, Stored

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
DEA_SYSTEM = "http://hl7.org/fhir/sid/us-dea"
DEGREE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0360"
# Credentials (HL7 v2 table 0360) of practitioners who provide medical services:
# physicians, nurse practitioners, physician assistants.
PRESCRIBING_DEGREES = frozenset({"MD", "DO", "NP", "CNP", "PA"})
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
NOTE_PAGES = 20  # 99 notes a page: far more than one encounter has


class Missing(StrEnum):
    """What keeps an encounter from being billed (the 409 of `$claim` names them)."""

    NOT_FINISHED = "encounter-not-finished"
    NO_NOTE = "note-missing"
    NOTE_UNSIGNED = "note-unsigned"
    COSIGN_PENDING = "cosignature-pending"
    NO_CHARGE = "no-charge"


@dataclass(frozen=True)
class Encounter:
    stored: Stored
    patient_id: str
    notes: list[Stored]  # the encounter's clinical notes (psychotherapy notes never)

    @property
    def body(self) -> dict[str, Any]:
        return self.stored.resource or {}

    @property
    def signed_notes(self) -> list[str]:
        return [n.address.resource_id for n in self.notes if documents.signed(_body(n))]


def _body(stored: Stored) -> dict[str, Any]:
    return stored.resource or {}


def read_encounter(tenant: str, encounter_id: str, read: Stored | None = None) -> Encounter | None:
    """The live encounter (`read`: already read) and its notes; None when there is no
    such encounter."""
    decl = registry.require("Encounter")
    a = service.address_of(tenant, decl, encounter_id)
    if a is None or a.patient_id is None:
        return None
    stored = read if read is not None else resources.read_current(a)
    if stored is None or stored.deleted or stored.resource is None:
        return None
    return Encounter(stored, a.patient_id, _notes(tenant, a.patient_id, encounter_id))


def _notes(tenant: str, patient_id: str, encounter_id: str) -> list[Stored]:
    decl = registry.require("DocumentReference")
    params = {"patient": [patient_id], "encounter": [f"Encounter/{encounter_id}"],
              "_count": ["99"]}  # fmt: skip
    found: list[Stored] = []
    for _ in range(NOTE_PAGES):
        page = service.find(tenant, decl, params)
        found.extend(s for s in page.found if s.resource is not None)
        if page.next_cursor is None:
            break
        params["_cursor"] = [page.next_cursor]
    return found


def missing(encounter: Encounter) -> list[Missing]:
    """Why the encounter cannot be billed yet (empty: it can). A note counts once its
    author signed it and, for a trainee's note, once the supervisor co-signed it;
    drafts and addenda neither make it ready nor hold it back."""
    out = []
    if encounter.body.get("status") != "finished":
        out.append(Missing.NOT_FINISHED)
    originals = [_body(n) for n in encounter.notes if documents.is_addendum(_body(n)) is None]
    if not any(documents.signed(n) for n in originals):
        out.append(Missing.NOTE_UNSIGNED if originals else Missing.NO_NOTE)
    signed = [_body(n) for n in encounter.notes if documents.signed(_body(n))]
    if any(signing.awaiting_cosign(n) for n in signed):
        out.append(Missing.COSIGN_PENDING)
    return out


# ----------------------------------------------------------------- the rules' facts


def _extension(body: dict[str, Any], url: str, kind: str) -> Any:
    for ext in body.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext.get(kind)
    return None


def _period_minutes(body: dict[str, Any]) -> int | None:
    period = body.get("period") if isinstance(body.get("period"), dict) else {}
    start, end = (period or {}).get("start"), (period or {}).get("end")
    lo = v.date_range(start) if isinstance(start, str) else None
    hi = v.date_range(end) if isinstance(end, str) else None
    if lo is None or hi is None:
        return None
    return max(0, int((hi.lo - lo.lo).total_seconds() // 60))


def service_type(body: dict[str, Any]) -> str | None:
    for system, code in v.codings("serviceType")(body):
        if system == SERVICE_TYPE_SYSTEM:
            return str(code)
    return None


def performer(body: dict[str, Any]) -> str | None:
    """The rendering practitioner's id: the primary performer (PPRF), else the first
    practitioner taking part."""
    found: list[tuple[int, str]] = []
    for participant in body.get("participant") or []:
        if not isinstance(participant, dict):
            continue
        ref = (participant.get("individual") or {}).get("reference")
        if not isinstance(ref, str) or not ref.startswith("Practitioner/"):
            continue
        types = [c for t in participant.get("type") or [] for c in v.codings("t")({"t": t})]
        primary = (PARTICIPATION_SYSTEM, "PPRF") in types
        found.append((0 if primary else 1, ref.partition("/")[2]))
    return min(found)[1] if found else None


def provides_medical_services(practitioner: dict[str, Any] | None) -> bool:
    """A DEA registration on file, or a physician, NP or PA credential."""
    if practitioner is None:
        return False
    if any(system == DEA_SYSTEM for system, _ in v.identifiers()(practitioner)):
        return True
    degrees = {code for q in practitioner.get("qualification") or [] if isinstance(q, dict)
               for system, code in v.codings("code")(q) if system == DEGREE_SYSTEM}  # fmt: skip
    return bool(degrees & PRESCRIBING_DEGREES)


def facts(body: dict[str, Any], practitioner: dict[str, Any] | None) -> Facts:
    minutes = _extension(body, PSYCHOTHERAPY_MINUTES_URL, "valueInteger")
    present = _extension(body, PATIENT_PRESENT_URL, "valueBoolean")
    return Facts(
        service=service_type(body),
        minutes=minutes if isinstance(minutes, int) else _period_minutes(body),
        psychotherapy_minutes=minutes if isinstance(minutes, int) else None,
        mdm=_extension(body, MDM_URL, "valueCode"),
        interactive_complexity=_extension(body, INTERACTIVE_COMPLEXITY_URL, "valueBoolean") is True,
        prescriber=provides_medical_services(practitioner),
        patient_present=present is not False,
    )


def read_practitioner(tenant: str, practitioner_id: str | None) -> dict[str, Any] | None:
    if practitioner_id is None:
        return None
    a = service.address_of(tenant, registry.require("Practitioner"), practitioner_id)
    stored = resources.read_current(a) if a is not None else None
    return stored.resource if stored is not None and not stored.deleted else None


def diagnoses(tenant: str, patient_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ICD-10-CM codings of the encounter's diagnoses, by rank (then as listed),
    once each: the Conditions of this patient's chart, read in one BatchGetItem."""
    ranked: list[tuple[int, int, str]] = []
    for i, diagnosis in enumerate(body.get("diagnosis") or []):
        ref = (diagnosis.get("condition") or {}).get("reference") if isinstance(
            diagnosis, dict) else None  # fmt: skip
        rid = ref.partition("/")[2] if isinstance(ref, str) and ref.startswith("Condition/") else ""
        if keys.patient_of(rid) == patient_id:
            rank = diagnosis.get("rank")
            ranked.append((rank if isinstance(rank, int) else 1_000_000, i, rid))
    order = [Address(tenant, "Condition", rid, patient_id) for _, _, rid in sorted(ranked)]
    found = resources.read_many(order) if order else {}
    codes: list[dict[str, Any]] = []
    for a in order:
        stored = found.get(a)
        coding = _icd10(stored.resource if stored and not stored.deleted else None)
        if coding is not None and coding not in codes:
            codes.append(coding)
    return codes


def _icd10(condition: dict[str, Any] | None) -> dict[str, Any] | None:
    for coding in ((condition or {}).get("code") or {}).get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == ICD10_SYSTEM:
            return {k: coding[k] for k in ("system", "code", "display") if k in coding}
    return None
