"""The biller work queue: what capture could not charge as documented, one item per
encounter and reason (a CPT code too when it concerns one), oldest first.

Items are written once, in the capture's own transaction (functions/billing/service.py),
and hold ids and codes only; the descriptions below are fixed text.
"""

from __future__ import annotations

import re
from typing import Any

from functions.billing.cpt import Reason
from functions.common.caller import Caller
from functions.common.errors import Invalid, Issue
from models import billing as store

DEFAULT_COUNT, MAX_COUNT = 50, 99  # the page's audit record names each patient (one transaction)
CURSOR = re.compile(r"^[0-9TZ:.\-]{24}#[A-Za-z0-9\-.]{1,64}#[a-z0-9\-]{2,63}(#[0-9A-Z]{5})?$")

DESCRIPTIONS: dict[str, str] = {
    Reason.SERVICE_TYPE_MISSING: "The encounter has no service type of this clinic's code "
    "system: nothing was charged.",
    Reason.TIME_MISSING: "The time the code needs is not documented (psychotherapy minutes, "
    "or the period): that code was not charged.",
    Reason.TIME_UNDER_16: "Documented psychotherapy time is under 16 minutes: no "
    "psychotherapy code (CPT time rule).",
    Reason.FAMILY_UNDER_26: "Documented family psychotherapy time is under 26 minutes: no "
    "family psychotherapy code.",
    Reason.MDM_MISSING: "An E/M visit needs the documented medical decision making level: "
    "no E/M code.",
    Reason.EM_NEEDS_PRESCRIBER: "E/M codes are billed by practitioners who provide medical "
    "services (physician, NP, PA): no E/M code.",
    Reason.COMPLEXITY_NOT_BILLABLE: "Interactive complexity (90785) is documented but may not "
    "be added to this service (crisis, family psychotherapy or E/M alone).",
    Reason.PERFORMER_MISSING: "The encounter names no rendering practitioner.",
    Reason.DIAGNOSIS_MISSING: "The encounter has no ICD-10-CM diagnosis to point to.",
    Reason.FEE_MISSING: "The fee schedule has no amount for this code: the charge has no price.",
}


def parse_count(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise Invalid(Issue("invalid", f"_count must be 1 to {MAX_COUNT}.", ["_count"]))
    return int(value)


def parse_cursor(value: str | None) -> str | None:
    if value is not None and not CURSOR.match(value):
        raise Invalid(Issue("invalid", "_cursor is not valid.", ["_cursor"]))
    return value


def _row(entry: store.WorkEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "encounter": f"Encounter/{entry.encounter_id}",
        "patient": f"Patient/{entry.patient_id}",
        "reason": entry.reason,
        "description": DESCRIPTIONS.get(entry.reason, ""),
        "raisedAt": entry.at,
    }
    if entry.code:
        row["code"] = entry.code
    return row


def work_page(caller: Caller, count: int, cursor: str | None) -> tuple[list[dict[str, Any]],
                                                                      str | None]:  # fmt: skip
    """One page of the tenant's work queue; the audit record names every patient on it."""
    entries, after = store.work_page(caller.tenant, count, cursor)
    caller.returned("ChargeItem", len(entries), [e.patient_id for e in entries])
    return [_row(e) for e in entries], after
