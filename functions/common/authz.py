"""Who may do what: the role x action table, in one place.

Roles come from the verified token's `cognito:groups`; the tenant from its
`custom:tenant`. Patient-level rules (care team, consent, sensitive classes,
break-glass) will be checked after this table, never instead of it.
"""

from __future__ import annotations

from enum import StrEnum

from functions.common.errors import Forbidden, Issue
from functions.common.principal import Principal


class Role(StrEnum):
    CLINICIAN = "clinician"
    PRESCRIBER = "prescriber"
    FRONT_DESK = "front_desk"
    BILLER = "biller"
    CARE_COORDINATOR = "care_coordinator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    COMPLIANCE = "compliance"


class Action(StrEnum):
    PATIENT_READ = "patient.read"
    PATIENT_SEARCH = "patient.search"
    PATIENT_CREATE = "patient.create"
    PATIENT_UPDATE = "patient.update"
    PATIENT_DELETE = "patient.delete"
    PATIENT_HISTORY = "patient.history"  # also every version read (vread)
    PATIENT_LABEL = "patient.label"  # set or change security labels (meta.security)
    AUDIT_READ = "audit.read"


R = Role
_CARE = {R.CLINICIAN, R.PRESCRIBER, R.SUPERVISOR}

POLICY: dict[Action, frozenset[Role]] = {
    Action.PATIENT_READ: frozenset(_CARE | {R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR}),
    Action.PATIENT_SEARCH: frozenset(_CARE | {R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR}),
    Action.PATIENT_HISTORY: frozenset(_CARE | {R.FRONT_DESK, R.CARE_COORDINATOR}),
    Action.PATIENT_CREATE: frozenset(_CARE | {R.FRONT_DESK, R.CARE_COORDINATOR}),
    Action.PATIENT_UPDATE: frozenset(_CARE | {R.FRONT_DESK, R.CARE_COORDINATOR}),
    Action.PATIENT_DELETE: frozenset({R.SUPERVISOR, R.ADMIN}),
    # Labels are a clinical judgment (e.g. a 42 CFR Part 2 record); writes by other
    # roles keep the stored labels (functions/patients/labels.py).
    Action.PATIENT_LABEL: frozenset(_CARE),
    Action.AUDIT_READ: frozenset({R.COMPLIANCE}),
}


def allowed(principal: Principal, action: Action) -> bool:
    return any(role in POLICY[action] for role in principal.roles)


def authorize(principal: Principal, action: Action) -> None:
    if not allowed(principal, action):
        raise Forbidden(Issue("forbidden", f"Your roles do not allow {action.value}."))
