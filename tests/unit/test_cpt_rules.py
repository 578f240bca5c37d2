"""The CPT rules as a table: each row is what an encounter documents and the codes (and
work-queue reasons) it earns. Boundaries of every time band, the add-ons and the
90785 exclusions; docs/billing.md cites the source of each rule."""

from __future__ import annotations

import pytest

from functions.billing.cpt import Facts, Line, Reason, code_encounter, crisis_lines

R = Reason


def codes(f: Facts) -> list[tuple[str, int]]:
    return [(line.code, line.units) for line in code_encounter(f).lines]


def reasons(f: Facts) -> list[str]:
    return [w.reason.value for w in code_encounter(f).work]


def therapy(minutes: int | None, **kw: object) -> Facts:
    return Facts(service="psychotherapy-individual", minutes=minutes, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(15, []), (16, [("90832", 1)]), (37, [("90832", 1)]), (38, [("90834", 1)]),
     (52, [("90834", 1)]), (53, [("90837", 1)]), (90, [("90837", 1)])],
)  # fmt: skip
def test_psychotherapy_by_documented_minutes(minutes, expected):
    assert codes(therapy(minutes)) == expected


def test_under_16_minutes_is_no_code_and_a_work_item_saying_why():
    coded = code_encounter(therapy(15))
    assert coded.lines == ()
    assert [w.reason for w in coded.work] == [R.TIME_UNDER_16]


def test_psychotherapy_without_documented_time_is_a_work_item():
    assert codes(therapy(None)) == [] and reasons(therapy(None)) == [R.TIME_MISSING]


@pytest.mark.parametrize(
    ("minutes", "add_on"),
    [(16, "90833"), (37, "90833"), (38, "90836"), (52, "90836"), (53, "90838")],
)
def test_add_ons_with_an_em_visit_on_the_same_bands(minutes, add_on):
    f = Facts(service="medication-management", minutes=minutes, psychotherapy_minutes=minutes,
              mdm="moderate", prescriber=True)  # fmt: skip
    assert codes(f) == [("99214", 1), (add_on, 1)]


def test_em_with_psychotherapy_under_16_minutes_is_the_visit_alone_and_a_work_item():
    f = Facts(service="medication-management", minutes=25, psychotherapy_minutes=15,
              mdm="low", prescriber=True)  # fmt: skip
    assert codes(f) == [("99213", 1)] and reasons(f) == [R.TIME_UNDER_16]


@pytest.mark.parametrize(
    ("mdm", "code"),
    [("straightforward", "99212"), ("low", "99213"), ("moderate", "99214"), ("high", "99215")],
)
def test_em_level_follows_medical_decision_making(mdm, code):
    f = Facts(service="medication-management", minutes=20, mdm=mdm, prescriber=True)
    assert codes(f) == [(code, 1)] and reasons(f) == []


def test_em_without_mdm_or_by_a_non_prescriber_is_not_charged():
    no_mdm = Facts(service="medication-management", minutes=20, prescriber=True)
    assert codes(no_mdm) == [] and reasons(no_mdm) == [R.MDM_MISSING]
    not_md = Facts(service="medication-management", minutes=20, mdm="low")
    assert codes(not_md) == [] and reasons(not_md) == [R.EM_NEEDS_PRESCRIBER]


def test_individual_psychotherapy_with_an_mdm_level_is_em_plus_add_on():
    f = therapy(60, psychotherapy_minutes=40, mdm="low", prescriber=True)
    assert codes(f) == [("99213", 1), ("90836", 1)]
    # the add-on needs its own minutes: the period also holds the E/M work
    assert reasons(therapy(60, mdm="low", prescriber=True)) == [R.TIME_MISSING]
    # a therapist who is no prescriber bills the psychotherapy alone
    assert codes(therapy(40, mdm="low")) == [("90834", 1)]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(15, []), (16, [("90832", 1)]), (29, [("90832", 1)]), (30, [("90839", 1)]),
     (74, [("90839", 1)]), (75, [("90839", 1), ("90840", 1)]),
     (104, [("90839", 1), ("90840", 1)]), (105, [("90839", 1), ("90840", 2)]),
     (134, [("90839", 1), ("90840", 2)]), (135, [("90839", 1), ("90840", 3)])],
)  # fmt: skip
def test_crisis_by_minutes_under_30_billed_as_psychotherapy(minutes, expected):
    assert codes(Facts(service="crisis", minutes=minutes)) == expected


def test_crisis_lines_alone():
    assert crisis_lines(29) == ()
    assert crisis_lines(75) == (Line("90839"), Line("90840", 1))


@pytest.mark.parametrize(
    ("service", "prescriber", "code"),
    [("intake-evaluation", False, "90791"), ("intake-evaluation", True, "90792"),
     ("psychotherapy-group", False, "90853")],
)  # fmt: skip
def test_intake_and_group(service, prescriber, code):
    assert codes(Facts(service=service, minutes=None, prescriber=prescriber)) == [(code, 1)]


@pytest.mark.parametrize(
    ("minutes", "present", "expected"),
    [(25, True, []), (26, True, [("90847", 1)]), (50, False, [("90846", 1)])],
)
def test_family_psychotherapy_from_26_minutes(minutes, present, expected):
    f = Facts(service="psychotherapy-family", minutes=minutes, patient_present=present)
    assert codes(f) == expected
    assert reasons(f) == ([] if expected else [R.FAMILY_UNDER_26])


@pytest.mark.parametrize(
    "facts",
    [therapy(40), Facts(service="intake-evaluation", minutes=60),
     Facts(service="psychotherapy-group", minutes=90), Facts(service="crisis", minutes=20),
     Facts(service="medication-management", minutes=30, psychotherapy_minutes=20, mdm="low",
           prescriber=True)],
)  # fmt: skip
def test_interactive_complexity_adds_90785_to_its_primary_codes(facts):
    f = Facts(**{**facts.__dict__, "interactive_complexity": True})
    assert codes(f)[-1] == ("90785", 1) and R.COMPLEXITY_NOT_BILLABLE not in reasons(f)


@pytest.mark.parametrize(
    "facts",
    [Facts(service="crisis", minutes=45), Facts(service="crisis", minutes=80),
     Facts(service="psychotherapy-family", minutes=50),
     Facts(service="medication-management", minutes=20, mdm="low", prescriber=True),
     therapy(10)],
)  # fmt: skip
def test_interactive_complexity_is_never_added_to_crisis_family_or_em_alone(facts):
    f = Facts(**{**facts.__dict__, "interactive_complexity": True})
    assert "90785" not in [c for c, _ in codes(f)]
    assert R.COMPLEXITY_NOT_BILLABLE in reasons(f)
    assert codes(f) == codes(facts)  # the other codes stay as they were


def test_no_service_type_is_a_work_item():
    f = Facts(service=None, minutes=50)
    assert codes(f) == [] and reasons(f) == [R.SERVICE_TYPE_MISSING]
