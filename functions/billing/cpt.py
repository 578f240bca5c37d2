"""Which CPT codes an encounter earns: pure functions of what the encounter documents.

Each rule, with the CPT or CMS text it follows, is listed in docs/billing.md. The
input is `Facts` (read from the Encounter and its rendering Practitioner by
functions/billing/facts.py); the output is the lines to charge and, for what cannot
be charged as documented, the reasons a biller must look at (work-queue items).
Codes only, never text of the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"

DISPLAY = {
    "90785": "Interactive complexity",
    "90791": "Psychiatric diagnostic evaluation",
    "90792": "Psychiatric diagnostic evaluation with medical services",
    "90832": "Psychotherapy, 30 minutes with patient",
    "90833": "Psychotherapy, 30 minutes with patient, with E/M",
    "90834": "Psychotherapy, 45 minutes with patient",
    "90836": "Psychotherapy, 45 minutes with patient, with E/M",
    "90837": "Psychotherapy, 60 minutes with patient",
    "90838": "Psychotherapy, 60 minutes with patient, with E/M",
    "90839": "Psychotherapy for crisis, first 60 minutes",
    "90840": "Psychotherapy for crisis, each additional 30 minutes",
    "90846": "Family psychotherapy without the patient present, 50 minutes",
    "90847": "Family psychotherapy with the patient present, 50 minutes",
    "90853": "Group psychotherapy",
    "99212": "Office visit, established patient, straightforward MDM",
    "99213": "Office visit, established patient, low MDM",
    "99214": "Office visit, established patient, moderate MDM",
    "99215": "Office visit, established patient, high MDM",
}

# Medical decision making (AMA E/M guidelines, 2021) -> established-patient office visit.
EM_BY_MDM = {"straightforward": "99212", "low": "99213", "moderate": "99214", "high": "99215"}

PSYCHOTHERAPY_MIN = 16  # below: no psychotherapy code at all
FAMILY_MIN = 26  # 90846/90847 are 50-minute codes: the midpoint
CRISIS_MIN = 30  # 90839 from 30 minutes; below, psychotherapy codes
CRISIS_FIRST_MAX = 74  # 90839 alone up to 74; each further 30 minutes (from 75) one 90840
# The primary codes 90785 may be added to (CPT; CMS NCCI): never crisis, family or E/M alone.
COMPLEXITY_PRIMARIES = frozenset(
    {"90791", "90792", "90832", "90833", "90834", "90836", "90837", "90838", "90853"}
)


class Reason(StrEnum):
    """Why an encounter (or one of its codes) could not be charged as documented."""

    SERVICE_TYPE_MISSING = "service-type-missing"
    TIME_MISSING = "time-missing"
    TIME_UNDER_16 = "psychotherapy-under-16-minutes"
    FAMILY_UNDER_26 = "family-psychotherapy-under-26-minutes"
    MDM_MISSING = "mdm-level-missing"
    EM_NEEDS_PRESCRIBER = "em-needs-prescriber"
    COMPLEXITY_NOT_BILLABLE = "interactive-complexity-not-billable"
    PERFORMER_MISSING = "performer-missing"
    DIAGNOSIS_MISSING = "diagnosis-missing"
    FEE_MISSING = "fee-missing"


@dataclass(frozen=True)
class Facts:
    """What the encounter documents, as the rules need it."""

    service: str | None  # a code of functions/encounters/workflow.py SERVICE_TYPES
    minutes: int | None  # documented time: psychotherapy minutes, else the period's length
    psychotherapy_minutes: int | None = None  # the documented psychotherapy minutes only
    mdm: str | None = None  # straightforward | low | moderate | high
    interactive_complexity: bool = False
    prescriber: bool = False  # the rendering practitioner provides medical services
    patient_present: bool = True  # family psychotherapy: with (90847) or without (90846)


@dataclass(frozen=True)
class Line:
    code: str
    units: int = 1

    @property
    def display(self) -> str:
        return DISPLAY[self.code]


@dataclass(frozen=True)
class Work:
    reason: Reason
    code: str | None = None  # the CPT code concerned, when there is one


@dataclass(frozen=True)
class Coded:
    lines: tuple[Line, ...] = ()
    work: tuple[Work, ...] = field(default_factory=tuple)

    def __add__(self, other: Coded) -> Coded:
        return Coded(self.lines + other.lines, self.work + other.work)


def _lines(*codes: str) -> Coded:
    return Coded(tuple(Line(c) for c in codes))


def _work(reason: Reason, code: str | None = None) -> Coded:
    return Coded(work=(Work(reason, code),))


def psychotherapy_code(minutes: int) -> str | None:
    """90832 for 16-37 minutes, 90834 for 38-52, 90837 for 53 and more; None under 16."""
    if minutes < PSYCHOTHERAPY_MIN:
        return None
    return "90832" if minutes <= 37 else "90834" if minutes <= 52 else "90837"


def add_on_code(minutes: int) -> str | None:
    """Psychotherapy with an E/M visit, on the same bands: 90833, 90836, 90838."""
    alone = psychotherapy_code(minutes)
    return {"90832": "90833", "90834": "90836", "90837": "90838"}.get(alone or "")


def crisis_lines(minutes: int) -> tuple[Line, ...]:
    """90839 for 30-74 minutes; from 75, one 90840 per further 30 minutes or part of
    them past the midpoint (75-104: 1, 105-134: 2, ...). Under 30 minutes: ()."""
    if minutes < CRISIS_MIN:
        return ()
    first = (Line("90839"),)
    if minutes <= CRISIS_FIRST_MAX:
        return first
    return (*first, Line("90840", (minutes - CRISIS_FIRST_MAX - 1) // 30 + 1))


def _psychotherapy(minutes: int | None) -> Coded:
    if minutes is None:
        return _work(Reason.TIME_MISSING)
    code = psychotherapy_code(minutes)
    return _lines(code) if code else _work(Reason.TIME_UNDER_16)


def _with_em(f: Facts) -> Coded:
    """An E/M visit by MDM level, and psychotherapy add-on by the psychotherapy minutes
    documented apart from it (the period also holds the E/M work)."""
    if not f.prescriber:
        fallback = _psychotherapy(f.minutes) if f.service == "psychotherapy-individual" else Coded()
        return _work(Reason.EM_NEEDS_PRESCRIBER) + fallback
    em = EM_BY_MDM.get(f.mdm or "")
    if em is None:
        return _work(Reason.MDM_MISSING)
    if f.psychotherapy_minutes is None:
        if f.service == "psychotherapy-individual":
            return _lines(em) + _work(Reason.TIME_MISSING)
        return _lines(em)
    add_on = add_on_code(f.psychotherapy_minutes)
    return _lines(em, add_on) if add_on else _lines(em) + _work(Reason.TIME_UNDER_16)


def _crisis(minutes: int | None) -> Coded:
    if minutes is None:
        return _work(Reason.TIME_MISSING)
    if minutes < CRISIS_MIN:
        return _psychotherapy(minutes)  # CPT: under 30 minutes, report psychotherapy
    return Coded(crisis_lines(minutes))


def _family(f: Facts) -> Coded:
    if f.minutes is None:
        return _work(Reason.TIME_MISSING)
    if f.minutes < FAMILY_MIN:
        return _work(Reason.FAMILY_UNDER_26)
    return _lines("90847" if f.patient_present else "90846")


def _service(f: Facts) -> Coded:
    if f.service == "intake-evaluation":
        return _lines("90792" if f.prescriber else "90791")
    if f.service == "medication-management" or (
        f.service == "psychotherapy-individual" and f.mdm is not None
    ):
        return _with_em(f)
    if f.service == "psychotherapy-individual":
        return _psychotherapy(f.minutes)
    if f.service == "crisis":
        return _crisis(f.minutes)
    if f.service == "psychotherapy-family":
        return _family(f)
    if f.service == "psychotherapy-group":
        return _lines("90853")
    return _work(Reason.SERVICE_TYPE_MISSING)


def _complexity(coded: Coded) -> Coded:
    if any(line.code in COMPLEXITY_PRIMARIES for line in coded.lines):
        return _lines("90785")
    return _work(Reason.COMPLEXITY_NOT_BILLABLE, "90785")


def code_encounter(f: Facts) -> Coded:
    """The lines an encounter earns, and the work items for what it cannot."""
    coded = _service(f)
    return coded + _complexity(coded) if f.interactive_complexity else coded
