"""The formulary: common psychiatric medications at RxNorm ingredient level.

A MedicationRequest names its drug by an RxNorm ingredient concept (TTY=IN) of
this table; a clinical drug (SCD), brand (BN) or precise ingredient (PIN) is not
looked up. Each row carries its sources, so every value can be checked:

* RxCUI: the RxNav page of the concept (`rxnav_url`).
* DEA schedule: the schedule's regulation in 21 CFR part 1308 (`schedule_source`):
  1308.12 (II), 1308.13 (III), 1308.14 (IV), 1308.15 (V); "not controlled" otherwise.
* Drug class: the FDA Established Pharmacologic Class (EPC) of the ingredient's
  structured product labels, as RxClass serves it (`class_source`). Two orders of
  one class are a duplicate therapy (functions/medications/rules.py).

Drugs whose ingredient concept could not be confirmed are left out rather than
guessed (docs/medications.md, "Not in the table"). The table is small and built
into a lookup at import; `markdown_table()` renders it for docs/medications.md,
and a unit test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
RXNAV = "https://mor.nlm.nih.gov/RxNav/search?searchBy=RXCUI&searchTerm={rxcui}"
RXCLASS_EPC = (
    "https://rxnav.nlm.nih.gov/REST/rxclass/class/byRxcui.json"
    "?rxcui={rxcui}&relaSource=DAILYMED&relas=has_EPC"
)
SCHEDULES = ("II", "III", "IV", "V")
REGULATIONS = {
    "II": "21 CFR 1308.12",
    "III": "21 CFR 1308.13",
    "IV": "21 CFR 1308.14",
    "V": "21 CFR 1308.15",
}
NOT_CONTROLLED = "not controlled"

# Drug class code -> the FDA Established Pharmacologic Class it stands for.
CLASSES = {
    "sri": "Serotonin Reuptake Inhibitor",
    "snri": "Serotonin and Norepinephrine Reuptake Inhibitor",
    "aminoketone": "Aminoketone",
    "tetracyclic": "Tetracyclic Antidepressant",
    "atypical-antipsychotic": "Atypical Antipsychotic",
    "typical-antipsychotic": "Typical Antipsychotic",
    "anti-epileptic": "Anti-epileptic Agent",
    "benzodiazepine": "Benzodiazepine",
    "cns-stimulant": "Central Nervous System Stimulant",
    "nri": "Norepinephrine Reuptake Inhibitor",
    "gaba-agonist": "gamma-Aminobutyric Acid-ergic Agonist",
    "partial-opioid-agonist": "Partial Opioid Agonist",
    "opioid-antagonist": "Opioid Antagonist",
    "anxiolytic": "Anxiolytic",
    "h1-antagonist": "Histamine-1 Receptor Antagonist",
}


@dataclass(frozen=True)
class FormularyEntry:
    """One ingredient: its RxNorm concept, FDA drug class and DEA schedule."""

    rxcui: str
    ingredient: str  # the RxNorm ingredient name, lower case as RxNorm writes it
    drug_class: str  # a key of CLASSES
    schedule: str | None  # "II" .. "V", None when not controlled

    @property
    def controlled(self) -> bool:
        """A controlled substance (any DEA schedule)."""
        return self.schedule is not None

    @property
    def class_name(self) -> str:
        """The FDA Established Pharmacologic Class of the class code."""
        return CLASSES[self.drug_class]

    @property
    def rxnav_url(self) -> str:
        """Where the RxCUI is checked."""
        return RXNAV.format(rxcui=self.rxcui)

    @property
    def class_source(self) -> str:
        """Where the drug class is checked (FDA EPC, via RxClass)."""
        return RXCLASS_EPC.format(rxcui=self.rxcui)

    @property
    def schedule_source(self) -> str:
        """The regulation that places the ingredient in its schedule."""
        return REGULATIONS[self.schedule] if self.schedule else NOT_CONTROLLED


def _e(rxcui: str, ingredient: str, drug_class: str, schedule: str | None = None) -> FormularyEntry:
    return FormularyEntry(rxcui, ingredient, drug_class, schedule)


FORMULARY: tuple[FormularyEntry, ...] = (
    # antidepressants
    _e("36437", "sertraline", "sri"),
    _e("4493", "fluoxetine", "sri"),
    _e("321988", "escitalopram", "sri"),
    _e("2556", "citalopram", "sri"),
    _e("32937", "paroxetine", "sri"),
    _e("10737", "trazodone", "sri"),
    _e("39786", "venlafaxine", "snri"),
    _e("72625", "duloxetine", "snri"),
    _e("42347", "bupropion", "aminoketone"),
    _e("15996", "mirtazapine", "tetracyclic"),
    # antipsychotics
    _e("51272", "quetiapine", "atypical-antipsychotic"),
    _e("89013", "aripiprazole", "atypical-antipsychotic"),
    _e("35636", "risperidone", "atypical-antipsychotic"),
    _e("61381", "olanzapine", "atypical-antipsychotic"),
    _e("2626", "clozapine", "atypical-antipsychotic"),
    _e("5093", "haloperidol", "typical-antipsychotic"),
    # mood stabilizers
    _e("28439", "lamotrigine", "anti-epileptic"),
    _e("11118", "valproic acid", "anti-epileptic"),
    # anxiolytics and hypnotics
    _e("596", "alprazolam", "benzodiazepine", "IV"),
    _e("6470", "lorazepam", "benzodiazepine", "IV"),
    _e("2598", "clonazepam", "benzodiazepine", "IV"),
    _e("3322", "diazepam", "benzodiazepine", "IV"),
    _e("39993", "zolpidem", "gaba-agonist", "IV"),
    _e("1827", "buspirone", "anxiolytic"),
    _e("5553", "hydroxyzine", "h1-antagonist"),
    # ADHD
    _e("6901", "methylphenidate", "cns-stimulant", "II"),
    _e("725", "amphetamine", "cns-stimulant", "II"),
    _e("3288", "dextroamphetamine", "cns-stimulant", "II"),
    _e("700810", "lisdexamfetamine", "cns-stimulant", "II"),
    _e("38400", "atomoxetine", "nri"),
    # substance use disorders
    _e("1819", "buprenorphine", "partial-opioid-agonist", "III"),
    _e("7243", "naltrexone", "opioid-antagonist"),
)

_BY_RXCUI = {entry.rxcui: entry for entry in FORMULARY}


def by_rxcui(rxcui: str) -> FormularyEntry | None:
    """The formulary entry of an RxNorm ingredient code, None when it is not one."""
    return _BY_RXCUI.get(rxcui)


def markdown_table() -> str:
    """The formulary as a Markdown table with its sources (docs/medications.md)."""
    lines = [
        "| RxCUI | ingredient | drug class (code) | DEA schedule | sources |",
        "|---|---|---|---|---|",
    ]
    for e in FORMULARY:
        schedule = e.schedule or "none"
        sources = (
            f"[RxNav]({e.rxnav_url}); {e.schedule_source}; [FDA EPC via RxClass]({e.class_source})"
        )
        lines.append(
            f"| {e.rxcui} | {e.ingredient} | {e.class_name} (`{e.drug_class}`) "
            f"| {schedule} | {sources} |"
        )
    return "\n".join(lines) + "\n"
