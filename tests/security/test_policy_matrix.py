"""The whole access table, typed out by hand and compared cell by cell with `allowed()`.

The grids below are deliberately NOT derived from functions/common/authz.py: a wrong
grant (or a missing one) there must fail here. Columns: r read, s search, c create,
u update, d delete, h history (and vread), l label; X allowed, . denied.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.common import authz
from functions.common.authz import POLICY, Op, Permission, Role, allowed, authorize
from functions.common.errors import Forbidden, NotFound
from functions.common.principal import Principal

COLUMNS = {"r": Op.READ, "s": Op.SEARCH, "c": Op.CREATE, "u": Op.UPDATE,
           "d": Op.DELETE, "h": Op.HISTORY, "l": Op.LABEL, "g": Op.SIGN}  # fmt: skip
ROLES = (
    "clinician", "prescriber", "supervisor", "front_desk",
    "biller", "care_coordinator", "admin", "compliance",
)  # fmt: skip

MATRIX: dict[tuple[str, str], str] = {
    ("Patient", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       X X X X . X . .
        biller           X X . . . . . .
        care_coordinator X X X X . X . .
        admin            . . . . X . . .
        compliance       . . . . . . . .
    """,
    ("Practitioner", "staff"): """
                         r s c u d h l g
        clinician        X X . . . . . .
        prescriber       X X . . . . . .
        supervisor       X X X X . X . .
        front_desk       X X . . . . . .
        biller           X X . . . . . .
        care_coordinator X X . . . . . .
        admin            X X X X X X . .
        compliance       X X . . . X . .
    """,
    ("Encounter", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       X X X X . X . .
        biller           X X . . . X . .
        care_coordinator X X . . . X . .
        admin            . . . . X . . .
        compliance       . . . . . . . .
    """,
    ("Condition", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       . . . . . . . .
        biller           X X . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("AllergyIntolerance", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Observation", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("MedicationRequest", "phi"): """
                         r s c u d h l g
        clinician        X X . . . X X .
        prescriber       X X X X . X X .
        supervisor       X X . . X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("DocumentReference", "clinical-note"): """
                         r s c u d h l g
        clinician        X X X X X X X X
        prescriber       X X X X X X X X
        supervisor       X X X X X X X X
        front_desk       . . . . . . . .
        biller           X X . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("DocumentReference", "psychotherapy"): """
                         r s c u d h l g
        clinician        X X X X X X . X
        prescriber       X X X X X X . X
        supervisor       X X X X X X . X
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Provenance", "phi"): """
                         r s c u d h l g
        clinician        X X . . . X . .
        prescriber       X X . . . X . .
        supervisor       X X . . . X . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Provenance", "psychotherapy"): """
                         r s c u d h l g
        clinician        X X . . . X . .
        prescriber       X X . . . X . .
        supervisor       X X . . . X . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("QuestionnaireResponse", "phi"): """
                         r s c u d h l g
        clinician        X X X . . X X .
        prescriber       X X X . . X X .
        supervisor       X X X . X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X X . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Flag", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("CarePlan", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X X
        prescriber       X X X X . X X X
        supervisor       X X X X X X X X
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Goal", "phi"): """
                         r s c u d h l g
        clinician        X X X X . X X .
        prescriber       X X X X . X X .
        supervisor       X X X X X X X .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator X X . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Questionnaire", "catalog"): """
                         r s c u d h l g
        clinician        X X . . . . . .
        prescriber       X X . . . . . .
        supervisor       X X . . . . . .
        front_desk       X X . . . . . .
        biller           X X . . . . . .
        care_coordinator X X . . . . . .
        admin            X X . . . . . .
        compliance       X X . . . . . .
    """,
    ("NoteTemplate", "config"): """
                         r s c u d h l g
        clinician        X X . . . . . .
        prescriber       X X . . . . . .
        supervisor       X X . X X . . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            X X . X X . . .
        compliance       . . . . . . . .
    """,
    ("TenantSettings", "config"): """
                         r s c u d h l g
        clinician        . . . . . . . .
        prescriber       . . . . . . . .
        supervisor       . . . . . . . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            X . . X . . . .
        compliance       . . . . . . . .
    """,
    ("Task", "safety-alert"): """
                         r s c u d h l g
        clinician        X . . X . . . .
        prescriber       X . . X . . . .
        supervisor       X . . X . . . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("ChargeItem", "phi"): """
                         r s c u d h l g
        clinician        . . . . . . . .
        prescriber       . . . . . . . .
        supervisor       . . . . . . . .
        front_desk       . . . . . . . .
        biller           X X . X . X . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("Claim", "phi"): """
                         r s c u d h l g
        clinician        . . . . . . . .
        prescriber       . . . . . . . .
        supervisor       . . . . . . . .
        front_desk       . . . . . . . .
        biller           X X X X . X . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       . . . . . . . .
    """,
    ("AuditEvent", "audit"): """
                         r s c u d h l g
        clinician        . . . . . . . .
        prescriber       . . . . . . . .
        supervisor       . . . . . . . .
        front_desk       . . . . . . . .
        biller           . . . . . . . .
        care_coordinator . . . . . . . .
        admin            . . . . . . . .
        compliance       X X . . . . . .
    """,
}


def _parse(grid: str) -> dict[str, dict[Op, bool]]:
    """role -> op -> allowed, from one grid; any malformed line fails loudly."""
    header, *rows = [line.split() for line in grid.strip().splitlines()]
    assert header == list(COLUMNS), header
    out: dict[str, dict[Op, bool]] = {}
    for role, *cells in rows:
        assert len(cells) == len(header) and set(cells) <= {"X", "."}, (role, cells)
        assert role not in out, f"{role} twice"
        out[role] = {COLUMNS[col]: cell == "X" for col, cell in zip(header, cells, strict=True)}
    assert tuple(out) == ROLES, "every grid lists every role, in the same order"
    return out


EXPECTED = {key: _parse(grid) for key, grid in MATRIX.items()}
CELLS = [(key, role, op) for key in MATRIX for role in ROLES for op in Op]


def who(*roles: str) -> Principal:
    return Principal(sub="sub-1", username=None, tenant="demo-clinic", roles=frozenset(roles))


def test_the_grid_covers_every_role_and_op():
    assert set(ROLES) == {r.value for r in Role}
    assert set(COLUMNS.values()) == set(Op)


def test_every_policy_row_has_a_written_grid():
    # A row added to POLICY without its grid here is an untested grant.
    assert set(POLICY) == set(MATRIX)


@pytest.mark.parametrize(
    ("key", "role", "op"), CELLS, ids=[f"{t}/{c}-{role}-{op}" for (t, c), role, op in CELLS]
)
def test_cell(key, role, op):
    resource_type, data_class = key
    permission = Permission(resource_type, data_class, op)
    assert allowed(who(role), permission) is EXPECTED[key][role][op], permission.name


@pytest.mark.parametrize("op", list(Op))
@pytest.mark.parametrize(
    ("resource_type", "data_class"),
    [
        ("Medication", "phi"),  # unknown type
        ("patient", "phi"),  # types are case-sensitive FHIR names
        ("Patient", "psychotherapy"),  # unknown data class of a known type
        ("Observation", "psychotherapy"),
        ("Patient", "PHI"),
        ("Practitioner", "phi"),  # a known type under another type's class
        ("AuditEvent", "phi"),
        ("", ""),
    ],
)
def test_anything_unnamed_is_denied_to_everyone(resource_type, data_class, op):
    permission = Permission(resource_type, data_class, op)
    assert not allowed(who(*ROLES), permission)
    with pytest.raises(Forbidden):
        authorize(who(*ROLES), permission)


def test_several_roles_get_the_union():
    for key, by_role in EXPECTED.items():
        for op in Op:
            permission = Permission(*key, op)
            for first in ROLES:
                for second in ROLES:
                    union = by_role[first][op] or by_role[second][op]
                    assert allowed(who(first, second), permission) is union, (key, op, first)
    # Concretely: a supervisor who may also prescribe writes prescriptions.
    write = Permission("MedicationRequest", "phi", Op.CREATE)
    assert not allowed(who("supervisor"), write)
    assert allowed(who("supervisor", "prescriber"), write)


def test_unknown_roles_are_ignored():
    assert not allowed(who("root", "Clinician", ""), Permission("Patient", "phi", Op.READ))
    assert allowed(who("root", "clinician"), Permission("Patient", "phi", Op.READ))


@pytest.mark.parametrize(("key", "op"), [(key, op) for key in MATRIX for op in Op])
def test_no_roles_is_denied(key, op):
    permission = Permission(*key, op)
    assert not allowed(who(), permission)
    with pytest.raises(Forbidden, match=f"do not allow {permission.name}"):
        authorize(who(), permission)


# After-load checks.

RESOURCE: dict[str, Any] = {"resourceType": "Patient", "id": "p1"}


def test_only_the_note_rules_are_registered():
    from functions.notes import access

    assert authz._loaded_checks == [access.psychotherapy_purpose]
    assert authz._views == [access.psychotherapy_view, access.billing_view]
    authz.check_loaded(who("clinician"), "Patient", "phi", RESOURCE)  # other classes: no objection
    assert authz.shown(who("biller"), "Patient", "phi", RESOURCE) == RESOURCE


def test_loaded_checks_run_in_order_with_their_arguments_and_are_removed_after():
    calls: list[tuple[str, Principal, str, str, dict[str, Any]]] = []

    def first(p: Principal, t: str, c: str, r: dict[str, Any]) -> None:
        calls.append(("first", p, t, c, r))

    def second(p: Principal, t: str, c: str, r: dict[str, Any]) -> None:
        calls.append(("second", p, t, c, r))

    principal = who("clinician")
    registered = list(authz._loaded_checks)
    with authz.isolated_loaded_checks():
        authz.register_loaded_check(first)
        authz.register_loaded_check(second)
        authz.register_loaded_check(first)  # again: still runs once, in its first place
        authz.check_loaded(principal, "Patient", "phi", RESOURCE)
    assert calls == [
        ("first", principal, "Patient", "phi", RESOURCE),
        ("second", principal, "Patient", "phi", RESOURCE),
    ]
    assert authz._loaded_checks == registered
    authz.check_loaded(principal, "Patient", "phi", RESOURCE)  # ours do not run any more
    assert len(calls) == 2


REFUSALS = [
    Forbidden.of("forbidden", "Not on the care team."),
    NotFound.of("not-found", "Patient/p1 is not known."),
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_loaded_check_can_refuse_and_later_checks_do_not_run(refusal):
    ran: list[str] = []

    def refuse(p: Principal, t: str, c: str, r: dict[str, Any]) -> None:
        ran.append("refuse")
        raise refusal

    def after(p: Principal, t: str, c: str, r: dict[str, Any]) -> None:
        ran.append("after")

    registered = list(authz._loaded_checks)
    with authz.isolated_loaded_checks():
        authz.register_loaded_check(refuse)
        authz.register_loaded_check(after)
        with pytest.raises(type(refusal)) as raised:
            authz.check_loaded(who("supervisor"), "Patient", "phi", RESOURCE)
    assert raised.value is refusal
    assert ran == ["refuse"]
    assert authz._loaded_checks == registered


def test_isolation_restores_even_when_the_block_fails():
    def check(p: Principal, t: str, c: str, r: dict[str, Any]) -> None:
        raise Forbidden.of("forbidden", "no")

    registered = list(authz._loaded_checks)
    with pytest.raises(RuntimeError), authz.isolated_loaded_checks():
        authz.register_loaded_check(check)
        raise RuntimeError("boom")
    assert authz._loaded_checks == registered
