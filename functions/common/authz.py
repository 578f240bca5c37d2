"""Who may do what: one table of role x resource type x data class x operation.

Roles come from the verified token's `cognito:groups`; the tenant from its
`custom:tenant`. A request names a `Permission` (resource type, data class,
operation); `POLICY` maps (resource type, data class) -> operation -> roles.
Anything the table does not name is denied: an unknown resource type, an unknown
data class of a known type (e.g. psychotherapy notes before their row exists),
an operation missing from a row, a principal without roles.

The table is checked before the resource is loaded. Rules that need the resource
itself (care team, consent, sensitive classes, break-glass) are after-load checks
(`register_loaded_check`), run by `check_loaded` once a resource is loaded and
before it is returned: in addition to this table, never instead of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


class Op(StrEnum):
    READ = "read"
    SEARCH = "search"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    HISTORY = "history"  # the history and every version read (vread): old versions are history
    LABEL = "label"  # set or change security labels (meta.security) on a write
    SIGN = "sign"  # $sign / $cosign: lock a note or plan under the signer's name


@dataclass(frozen=True)
class Permission:
    resource_type: str  # FHIR type: "Patient", "Encounter", "AuditEvent", ...
    data_class: str  # "phi", "staff", "audit" (psychotherapy etc. get their own rows later)
    op: Op

    @property
    def name(self) -> str:
        """`patient.read`, `medicationrequest.create`: what refusals and audit records say."""
        return f"{self.resource_type.lower()}.{self.op}"


R = Role
_CARE = frozenset({R.CLINICIAN, R.PRESCRIBER, R.SUPERVISOR})
_ALL = frozenset(Role)
_NOBODY: frozenset[Role] = frozenset()


def _roles(*groups: frozenset[Role] | Role) -> frozenset[Role]:
    out: set[Role] = set()
    for group in groups:
        out |= {group} if isinstance(group, Role) else group
    return frozenset(out)


# (resource type, data class) -> operation -> roles. Deny by default: a missing row or
# operation allows nobody. "care" = clinician, prescriber, supervisor.
POLICY: dict[tuple[str, str], dict[Op, frozenset[Role]]] = {
    ("Patient", "phi"): {
        # Demographics: everyone who treats, schedules, bills or coordinates needs to find
        # and read the patient.
        Op.READ: _roles(_CARE, R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR),
        # Old versions show what was corrected; billing works from the current record.
        Op.HISTORY: _roles(_CARE, R.FRONT_DESK, R.CARE_COORDINATOR),
        # Registration and demographic upkeep is front-desk and coordination work too.
        Op.CREATE: _roles(_CARE, R.FRONT_DESK, R.CARE_COORDINATOR),
        Op.UPDATE: _roles(_CARE, R.FRONT_DESK, R.CARE_COORDINATOR),
        # Removing a chart (duplicate, wrong registration) is supervisory or record upkeep.
        Op.DELETE: _roles(R.SUPERVISOR, R.ADMIN),
        # Labels are a clinical judgment (e.g. a 42 CFR Part 2 record); writes by other
        # roles keep the stored labels (functions/patients/labels.py).
        Op.LABEL: _CARE,
    },
    ("Practitioner", "staff"): {
        # The staff directory is not PHI, and every role meets practitioners in its work
        # (compliance resolves the actors named in audit records): all eight roles.
        Op.READ: _ALL,
        Op.SEARCH: _ALL,
        # Staff records are kept by IT (admin) and by the clinical lead (supervisor).
        Op.CREATE: _roles(R.ADMIN, R.SUPERVISOR),
        Op.UPDATE: _roles(R.ADMIN, R.SUPERVISOR),
        # Removing a staff record is account upkeep: admin only.
        Op.DELETE: _roles(R.ADMIN),
        # Who changed a credential or role, and when, is also a compliance question.
        Op.HISTORY: _roles(R.ADMIN, R.SUPERVISOR, R.COMPLIANCE),
        # Op.LABEL: none; security labels mark sensitive patient data, not staff records.
    },
    ("Encounter", "phi"): {
        # Visits are scheduled at the front desk, billed by the biller, and followed up by
        # care coordination, so all of them read, search and see corrections.
        Op.READ: _roles(_CARE, R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR),
        Op.HISTORY: _roles(_CARE, R.FRONT_DESK, R.BILLER, R.CARE_COORDINATOR),
        # Check-in/out and scheduling (front desk) and the visit itself (care).
        Op.CREATE: _roles(_CARE, R.FRONT_DESK),
        Op.UPDATE: _roles(_CARE, R.FRONT_DESK),
        # As for Patient: removing a visit made in error is supervisory or record upkeep.
        Op.DELETE: _roles(R.SUPERVISOR, R.ADMIN),
        Op.LABEL: _CARE,  # clinical judgment, as for Patient
    },
    ("Condition", "phi"): {
        # Diagnoses: billing needs the codes for claims, coordination for referrals.
        Op.READ: _roles(_CARE, R.BILLER, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.BILLER, R.CARE_COORDINATOR),
        # Revised diagnoses are clinical information; the current list serves the others.
        Op.HISTORY: _CARE,
        # Diagnosing is clinical work: clinician, prescriber, supervisor.
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        # Removing a clinical record (entered in error) is a supervisor's decision.
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("AllergyIntolerance", "phi"): {
        # Care and coordination (transitions, referrals); the front desk and billing have
        # no need for allergies (minimum necessary).
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("Observation", "phi"): {
        # Measurements and screening scores: care and coordination only, as for allergies.
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("MedicationRequest", "phi"): {
        # Medication lists: care and coordination (reconciliation at transitions).
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        # Only a prescriber prescribes: a supervisor or clinician who is licensed to
        # prescribe holds the prescriber role as well (roles combine as a union).
        Op.CREATE: _roles(R.PRESCRIBER),
        Op.UPDATE: _roles(R.PRESCRIBER),
        # Removing a prescription entered in error is a supervisor's decision.
        Op.DELETE: _roles(R.SUPERVISOR),
        # Clinical judgment, as elsewhere; it takes effect on the writes the role may make
        # (today: a prescriber's create/update).
        Op.LABEL: _CARE,
    },
    ("DocumentReference", "clinical-note"): {
        # Clinical notes. Billers read signed-note metadata for claims (the text is
        # taken out and drafts hidden: functions/notes/access.py); coordinators read
        # notes but neither write nor sign them; the front desk sees no notes at all.
        Op.READ: _roles(_CARE, R.BILLER, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.BILLER, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        # Only drafts can be deleted (a signed note is locked); by those who write them.
        Op.DELETE: _CARE,
        Op.SIGN: _CARE,
        Op.LABEL: _CARE,
    },
    ("DocumentReference", "psychotherapy"): {
        # Psychotherapy notes (45 CFR 164.501): the care roles reach the door, and
        # then only the note's author and the roles the tenant grants get through
        # (functions/notes/access.py); everyone else gets 404. No other role has a row.
        Op.READ: _CARE,
        Op.SEARCH: _CARE,
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _CARE,
        Op.SIGN: _CARE,
    },
    ("Provenance", "phi"): {
        # Signatures of notes and plans: written only by $sign/$cosign, never directly.
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
    },
    ("Provenance", "psychotherapy"): {
        # Signatures of psychotherapy notes: as the notes themselves.
        Op.READ: _CARE,
        Op.SEARCH: _CARE,
        Op.HISTORY: _CARE,
    },
    ("QuestionnaireResponse", "phi"): {
        # Screening answers: care and coordination administer and read them. A
        # submitted response is final (a new one replaces it): no update.
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _roles(_CARE, R.CARE_COORDINATOR),
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("Flag", "phi"): {
        # Safety flags: raised by scoring, resolved by a clinician with a note.
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("CarePlan", "phi"): {
        # Treatment and safety plans: written and signed by care, read by coordination.
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.SIGN: _CARE,
        Op.LABEL: _CARE,
    },
    ("Goal", "phi"): {
        Op.READ: _roles(_CARE, R.CARE_COORDINATOR),
        Op.SEARCH: _roles(_CARE, R.CARE_COORDINATOR),
        Op.HISTORY: _CARE,
        Op.CREATE: _CARE,
        Op.UPDATE: _CARE,
        Op.DELETE: _roles(R.SUPERVISOR),
        Op.LABEL: _CARE,
    },
    ("Questionnaire", "catalog"): {
        # The published instruments (PHQ-9, GAD-7, C-SSRS screener), served from code:
        # not PHI, read by every signed-in role.
        Op.READ: _ALL,
        Op.SEARCH: _ALL,
    },
    ("NoteTemplate", "config"): {
        # The clinic's note templates (no PHI): read by those who write notes and by
        # administrators; kept by the clinical lead and administrators.
        Op.READ: _roles(_CARE, R.ADMIN),
        Op.SEARCH: _roles(_CARE, R.ADMIN),
        Op.UPDATE: _roles(R.SUPERVISOR, R.ADMIN),
        Op.DELETE: _roles(R.SUPERVISOR, R.ADMIN),
    },
    ("TenantSettings", "config"): {
        # The clinic's options (unsigned-note days, roles granted psychotherapy notes).
        Op.READ: _roles(R.ADMIN),
        Op.UPDATE: _roles(R.ADMIN),
    },
    ("Task", "safety-alert"): {
        # Safety alerts in a clinician's work queue (GET /worklist): read and acknowledged
        # (update) by the care roles, and then only for alerts put in one of the user's
        # own queues (functions/alerts/worklist.py; anyone else gets 404).
        Op.READ: _CARE,
        Op.UPDATE: _CARE,
    },
    ("ChargeItem", "phi"): {
        # Charges of signed encounters (functions/billing): captured by the billing
        # pipeline, never created or deleted through the API. Billers read and search them
        # and correct them with $correct (the update permission; a plain PUT is refused by
        # the type's precheck).
        Op.READ: _roles(R.BILLER),
        Op.SEARCH: _roles(R.BILLER),
        Op.HISTORY: _roles(R.BILLER),
        Op.UPDATE: _roles(R.BILLER),
    },
    ("Claim", "phi"): {
        # Claims: assembled by a biller with Encounter/{id}/$claim (create) and sent with
        # $submit (update); a plain POST or PUT is refused by the type's precheck.
        Op.READ: _roles(R.BILLER),
        Op.SEARCH: _roles(R.BILLER),
        Op.HISTORY: _roles(R.BILLER),
        Op.CREATE: _roles(R.BILLER),
        Op.UPDATE: _roles(R.BILLER),
    },
    ("AuditEvent", "audit"): {
        # The audit trail is for compliance only: it names who saw which patient, so it
        # is sensitive itself, and the audited must not read (or shape) their own trail.
        # Records are written by the system with each request: no create/update/delete.
        Op.READ: _roles(R.COMPLIANCE),
        Op.SEARCH: _roles(R.COMPLIANCE),
    },
}

# The compliance route: `GET /AuditEvent?patient=...` is a search.
AUDIT_READ = Permission("AuditEvent", "audit", Op.SEARCH)


def allowed(principal: Principal, permission: Permission) -> bool:
    """True when one of the principal's roles holds the permission; anything the table
    does not name (type, data class, operation) is denied."""
    row = POLICY.get((permission.resource_type, permission.data_class), {})
    roles = row.get(permission.op, _NOBODY)
    return any(role in roles for role in principal.roles)


def authorize(principal: Principal, permission: Permission) -> None:
    if not allowed(principal, permission):
        raise Forbidden(Issue("forbidden", f"Your roles do not allow {permission.name}."))


# After-load checks: rules that need the loaded resource (care team, consent, ...).
# Each gets (principal, resource_type, data_class, resource) and raises Forbidden or
# NotFound to refuse; returning means "no objection". None is registered today.
LoadedCheck = Callable[[Principal, str, str, dict[str, Any]], None]

_loaded_checks: list[LoadedCheck] = []


def register_loaded_check(check: LoadedCheck) -> None:
    """Add a check, run after those registered before it. Registering the same check
    again is a no-op (a module imported twice does not run its check twice)."""
    if check not in _loaded_checks:
        _loaded_checks.append(check)


def check_loaded(
    principal: Principal, resource_type: str, data_class: str, resource: dict[str, Any]
) -> None:
    """Run every registered check in registration order; the first refusal propagates."""
    for check in tuple(_loaded_checks):
        check(principal, resource_type, data_class, resource)


# Views: what a role sees of a resource it may read (e.g. a biller sees a signed
# note's metadata, not its text). Each gets (principal, resource_type, data_class,
# resource) and returns the resource to show (trimmed, or as it is) or None to hide
# it (a read answers 404, a search leaves it out).
View = Callable[[Principal, str, str, dict[str, Any]], "dict[str, Any] | None"]

_views: list[View] = []


def register_view(view: View) -> None:
    if view not in _views:
        _views.append(view)


def shown(
    principal: Principal, resource_type: str, data_class: str, resource: dict[str, Any]
) -> dict[str, Any] | None:
    """The resource as this principal may see it (None: not at all)."""
    current: dict[str, Any] | None = resource
    for view in tuple(_views):
        if current is None:
            return None
        current = view(principal, resource_type, data_class, current)
    return current


@contextmanager
def isolated_loaded_checks() -> Iterator[None]:
    """For tests: checks and views registered inside the block are removed when it ends."""
    saved, saved_views = list(_loaded_checks), list(_views)
    try:
        yield
    finally:
        _loaded_checks[:] = saved
        _views[:] = saved_views
