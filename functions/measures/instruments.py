"""The instruments as FHIR R4 Questionnaires (plain dicts), with their scoring rules.

- PHQ-9: Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
  severity measure. J Gen Intern Med 2001;16(9):606-613. LOINC panel 44249-1; item and
  answer codes as in LOINC's own PHQ-9 Questionnaire (LHC-Forms export).
- GAD-7: Spitzer RL, Kroenke K, Williams JBW, Löwe B. A brief measure for assessing
  generalized anxiety disorder: the GAD-7. Arch Intern Med 2006;166(10):1092-1097.
  LOINC panel 69737-5.
- C-SSRS screener: the Columbia Lighthouse Project's "Columbia-Suicide Severity Rating
  Scale, Screen Version - Recent" (Posner K et al., Am J Psychiatry 2011;168(12):1266-1277;
  cssrs.columbia.edu), with its triage points. Item codes are local
  (CSSRS_SYSTEM); yes/no answers use LOINC LA33-6 / LA32-8.

Every item is a top-level `choice` item; each answer option carries its ordinal in the
`ordinalValue` extension (yes = 1, no = 0 for the C-SSRS). Skip logic is `enableWhen`.
The dicts are shared: copy them before changing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
BASE = "https://emr.example/fhir"
CSSRS_SYSTEM = f"{BASE}/CodeSystem/c-ssrs-screener"
BAND_SYSTEM = f"{BASE}/CodeSystem/severity-band"
VERSION = "1.0.0"

FREQUENCY = (
    ("LA6568-5", "Not at all", 0),
    ("LA6569-3", "Several days", 1),
    ("LA6570-1", "More than half the days", 2),
    ("LA6571-9", "Nearly every day", 3),
)
YES_NO = (("LA33-6", "Yes", 1), ("LA32-8", "No", 0))

PHQ9_ITEMS = (
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    (
        "44258-2",
        "Feeling bad about yourself - or that you are a failure or have let "
        "yourself or your family down",
    ),
    (
        "44252-5",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
    ),
    (
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed; or the "
        "opposite - being so fidgety or restless that you have been moving around a lot more "
        "than usual",
    ),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
)
GAD7_ITEMS = (
    ("69725-0", "Feeling nervous, anxious, or on edge"),
    ("68509-9", "Not being able to stop or control worrying"),
    ("69733-4", "Worrying too much about different things"),
    ("69734-2", "Trouble relaxing"),
    ("69735-9", "Being so restless that it is hard to sit still"),
    ("69689-8", "Becoming easily annoyed or irritable"),
    ("69736-7", "Feeling afraid, as if something awful might happen"),
)
# (linkId suffix, local code, text, the item whose "Yes" enables it)
CSSRS_ITEMS = (
    (
        "1",
        "wish-to-be-dead",
        "Have you wished you were dead or wished you could go to sleep and not wake up?",
        None,
    ),
    ("2", "suicidal-thoughts", "Have you actually had any thoughts of killing yourself?", None),
    ("3", "thoughts-of-method", "Have you been thinking about how you might do this?", "2"),
    (
        "4",
        "intent-without-plan",
        "Have you had these thoughts and had some intention of acting on them?",
        "2",
    ),
    (
        "5",
        "intent-with-plan",
        "Have you started to work out or worked out the details of how "
        "to kill yourself? Do you intend to carry out this plan?",
        "2",
    ),
    (
        "6",
        "suicidal-behavior",
        "Have you ever done anything, started to do anything, or "
        "prepared to do anything to end your life?",
        None,
    ),
    ("6a", "suicidal-behavior-past-3-months", "Was this within the past 3 months?", "6"),
)


@dataclass(frozen=True)
class Band:
    """A severity band (or C-SSRS risk level) in the local severity-band code system."""

    code: str
    display: str

    def coding(self) -> dict[str, str]:
        """The band as a Coding."""
        return {"system": BAND_SYSTEM, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class Outcome:
    """What a scorer finds: the total (None for the C-SSRS), the band, a safety reason."""

    total: int | None
    band: Band
    safety: str | None


Scorer = Callable[[Mapping[str, int]], Outcome]


@dataclass(frozen=True)
class Instrument:
    """One instrument: its Questionnaire, result code and scorer (linkId -> ordinal)."""

    key: str
    url: str
    total_loinc: str | None
    questionnaire: dict[str, Any] = field(compare=False, repr=False)
    scorer: Scorer = field(compare=False, repr=False)
    result_code: dict[str, str] = field(compare=False, repr=False)
    yes_no: bool = False  # answers are yes/no: Observation components carry valueBoolean


def _option(code: str, display: str, ordinal: int) -> dict[str, Any]:
    return {
        "extension": [{"url": ORDINAL, "valueDecimal": ordinal}],
        "valueCoding": {"system": LOINC, "code": code, "display": display},
    }


def _item(
    link_id: str, coding: dict[str, str], options: tuple[tuple[str, str, int], ...]
) -> dict[str, Any]:
    return {
        "linkId": link_id,
        "code": [coding],
        "text": coding["display"],
        "type": "choice",
        "required": True,
        "answerOption": [_option(*o) for o in options],
    }


def _questionnaire(key: str, name: str, title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "id": key,
        "url": f"{BASE}/Questionnaire/{key}",
        "version": VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "subjectType": ["Patient"],
        "item": items,
    }


def _loinc_questionnaire(
    key: str, name: str, title: str, panel: str, items: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    prefix = key.replace("-", "")
    built = [
        _item(f"{prefix}-{n}", {"system": LOINC, "code": code, "display": text}, FREQUENCY)
        for n, (code, text) in enumerate(items, start=1)
    ]
    out = _questionnaire(key, name, title, built)
    out["code"] = [{"system": LOINC, "code": panel, "display": title}]
    out["description"] = (
        "Over the last 2 weeks, how often have you been bothered by the following problems?"
    )
    return out


def _cssrs_questionnaire() -> dict[str, Any]:
    items = []
    for suffix, code, text, after in CSSRS_ITEMS:
        item = _item(
            f"cssrs-{suffix}", {"system": CSSRS_SYSTEM, "code": code, "display": text}, YES_NO
        )
        if after:
            yes = {"system": LOINC, "code": YES_NO[0][0], "display": YES_NO[0][1]}
            item["enableWhen"] = [
                {"question": f"cssrs-{after}", "operator": "=", "answerCoding": yes}
            ]
        items.append(item)
    out = _questionnaire(
        "c-ssrs-screener",
        "CSSRSScreener",
        "Columbia-Suicide Severity Rating Scale, Screen Version - Recent",
        items,
    )
    out["description"] = (
        "Questions 1-5 ask about the past month; question 6 about lifetime "
        "behaviour, with a follow-up on the past 3 months."
    )
    return out


PHQ9_BANDS = (
    (4, Band("minimal", "Minimal depression")),
    (9, Band("mild", "Mild depression")),
    (14, Band("moderate", "Moderate depression")),
    (19, Band("moderately-severe", "Moderately severe depression")),
    (27, Band("severe", "Severe depression")),
)
GAD7_BANDS = (
    (4, Band("minimal", "Minimal anxiety")),
    (9, Band("mild", "Mild anxiety")),
    (14, Band("moderate", "Moderate anxiety")),
    (21, Band("severe", "Severe anxiety")),
)
RISK = {
    "none": Band("risk-none", "No suicide risk identified"),
    "low": Band("risk-low", "Low suicide risk"),
    "moderate": Band("risk-moderate", "Moderate suicide risk"),
    "high": Band("risk-high", "High suicide risk"),
}
PHQ9_SAFETY = "phq9-item9-positive"
CSSRS_SAFETY = "cssrs-positive-screen"


def _band(total: int, bands: tuple[tuple[int, Band], ...]) -> Band:
    return next(band for top, band in bands if total <= top)


def score_phq9(answers: Mapping[str, int]) -> Outcome:
    """Sum of the nine ordinals (0-27), Kroenke 2001 bands; item 9 above 0 is a safety signal."""
    total = sum(answers.values())
    safety = PHQ9_SAFETY if answers.get("phq9-9", 0) > 0 else None
    return Outcome(total, _band(total, PHQ9_BANDS), safety)


def score_gad7(answers: Mapping[str, int]) -> Outcome:
    """Sum of the seven ordinals (0-21), Spitzer 2006 bands; no item is a safety signal."""
    total = sum(answers.values())
    return Outcome(total, _band(total, GAD7_BANDS), None)


def score_cssrs(answers: Mapping[str, int]) -> Outcome:
    """The Columbia screener's triage level, and whether the screen is positive.

    Positive screen (safety signal): yes to question 3, 4 or 5, or yes to 6 with its
    past-3-months follow-up yes. Triage points of the Columbia Lighthouse Project's screener:
    high = yes to 4 or 5, or behaviour within the past 3 months; moderate = yes to 3, or
    behaviour more than 3 months ago; low = yes to 1 or 2 only; none = every answer no.
    """
    yes = {link_id for link_id, ordinal in answers.items() if ordinal == 1}
    recent_behaviour = {"cssrs-6", "cssrs-6a"} <= yes
    if yes & {"cssrs-4", "cssrs-5"} or recent_behaviour:
        level = "high"
    elif yes & {"cssrs-3", "cssrs-6"}:
        level = "moderate"
    else:
        level = "low" if yes & {"cssrs-1", "cssrs-2"} else "none"
    positive = bool(yes & {"cssrs-3", "cssrs-4", "cssrs-5"}) or recent_behaviour
    return Outcome(None, RISK[level], CSSRS_SAFETY if positive else None)


PHQ9 = Instrument(
    "phq-9",
    f"{BASE}/Questionnaire/phq-9",
    "44261-6",
    _loinc_questionnaire(
        "phq-9", "PHQ9", "PHQ-9 quick depression assessment panel", "44249-1", PHQ9_ITEMS
    ),
    score_phq9,
    {
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    },
)
GAD7 = Instrument(
    "gad-7",
    f"{BASE}/Questionnaire/gad-7",
    "70274-6",
    _loinc_questionnaire(
        "gad-7", "GAD7", "Generalized anxiety disorder 7 item (GAD-7)", "69737-5", GAD7_ITEMS
    ),
    score_gad7,
    {
        "system": LOINC,
        "code": "70274-6",
        "display": "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    },
)
CSSRS = Instrument(
    "c-ssrs-screener",
    f"{BASE}/Questionnaire/c-ssrs-screener",
    None,
    _cssrs_questionnaire(),
    score_cssrs,
    {"system": CSSRS_SYSTEM, "code": "screen-result", "display": "C-SSRS screen risk level"},
    yes_no=True,
)
INSTRUMENTS = (PHQ9, GAD7, CSSRS)
_BY_URL = {i.url: i for i in INSTRUMENTS}
_BY_KEY = {i.key: i for i in INSTRUMENTS}


def questionnaire(url: str) -> Instrument | None:
    """The instrument of a canonical URL, optionally `|version` (ours only), else None."""
    base, _, version = url.partition("|")
    found = _BY_URL.get(base)
    if found is None or (version and version != found.questionnaire["version"]):
        return None
    return found


def by_key(key: str) -> Instrument | None:
    """The instrument of a key ("phq-9", "gad-7", "c-ssrs-screener"), else None."""
    return _BY_KEY.get(key)
