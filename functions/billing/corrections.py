"""`ChargeItem/{id}/$correct`: a biller changes a charge's code, units or price, with
a reason.

A `Parameters` body: `reason` (valueCode, required: a kind of
charges.REASON_KINDS), and any of `code` (valueCode or valueCoding: a CPT code),
`quantity` (valueInteger, 1 to 99), `price` (valueMoney: the unit price, USD) and
`note` (valueString, at most 1,000 characters, kept in the sealed charge only).
One transaction: the charge's next version (its history keeps the earlier ones),
the draft claim rebuilt from the corrected charges when the encounter has one, the
audit record, which names the reason kind (`overrides`: `charge-correction:<kind>`),
never the note. A charge whose claim was submitted is billed: 409.
"""

from __future__ import annotations

import re
from typing import Any

from functions.billing import charges, claims
from functions.billing.cpt import CPT_SYSTEM
from functions.billing.declarations import CHARGE_ITEM, CLAIM
from functions.common.caller import Caller
from functions.common.errors import Conflict, Invalid, Issue
from functions.engine import service
from models import billing as store
from models.clock import iso, now
from models.resources import Stored
from models.uow import UnitOfWork

CPT_CODE = re.compile(r"^[0-9]{4}[0-9A-Z]$")
NOTE_MAX = 1000
MAX_UNITS = 99
KINDS = {
    "reason": ("valueCode",),
    "code": ("valueCode", "valueCoding"),
    "quantity": ("valueInteger",),
    "price": ("valueMoney",),
    "note": ("valueString",),
}
SHAPE = "$correct takes a Parameters resource with parameter reason and any of code, quantity, "
ONCE = "Each of reason, code, quantity, price, note at most once, with its value type."


def _where(name: str) -> str:
    return f"Parameters.parameter.where(name='{name}')"


def _bad(name: str, text: str) -> Invalid:
    return Invalid(Issue("value", text, [_where(name)]))


def _values(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter"), list):
        raise Invalid(Issue("structure", SHAPE + "price, note.", ["Parameters"]))
    given: dict[str, Any] = {}
    for i, param in enumerate(body["parameter"]):
        name = param.get("name") if isinstance(param, dict) else None
        kinds = KINDS.get(str(name), ())
        found = [k for k in kinds if k in param] if isinstance(param, dict) else []
        if len(found) != 1 or name in given:
            raise Invalid(Issue("structure", ONCE, [f"Parameters.parameter[{i}]"]))
        given[str(name)] = param[found[0]]
    return given


def _code(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("code") if value.get("system", CPT_SYSTEM) == CPT_SYSTEM else None
    if not isinstance(value, str) or not CPT_CODE.match(value):
        raise _bad("code", f"code must be a CPT code ({CPT_SYSTEM}), e.g. 90834.")
    return value


def _units(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UNITS:
        raise _bad("quantity", f"quantity must be a whole number from 1 to {MAX_UNITS}.")
    return value


def _price(value: Any) -> int:
    cents = charges.cents_of(value)
    if cents is None or "value" not in value:
        raise _bad("price", "price must be a Money in USD, at least 0, with at most 2 decimals.")
    return cents


def parse(body: dict[str, Any]) -> charges.Correction:
    given = _values(body)
    kind = given.get("reason")
    if kind is None:
        raise Invalid(Issue("required", "$correct needs the parameter reason (why the charge "
                            f"is corrected: {', '.join(charges.REASON_KINDS)}).",
                            [_where("reason")]))  # fmt: skip
    if kind not in charges.REASON_KINDS:
        raise _bad("reason", f"reason must be one of {', '.join(charges.REASON_KINDS)}.")
    note = given.get("note")
    if note is not None and (not isinstance(note, str) or not note.strip() or len(note) > NOTE_MAX):
        raise _bad("note", f"note is text of 1 to {NOTE_MAX} characters.")
    if not {"code", "quantity", "price"} & set(given):
        raise Invalid(Issue("required", "$correct changes at least one of code, quantity, price.",
                            ["Parameters.parameter"]))  # fmt: skip
    return charges.Correction(
        reason=kind,
        code=_code(given["code"]) if "code" in given else None,
        units=_units(given["quantity"]) if "quantity" in given else None,
        unit_cents=_price(given["price"]) if "price" in given else None,
        note=note.strip() if isinstance(note, str) else None,
    )


def _encounter_of(charge: dict[str, Any]) -> str:
    ref = (charge.get("context") or {}).get("reference", "")
    return str(ref).partition("/")[2]


def _stage_claim(uow: UnitOfWork, caller: Caller, encounter_id: str, new: Stored) -> None:
    """The encounter's draft claim, rebuilt with the corrected charge (409 once submitted)."""
    captured, claimed = store.guards(caller.tenant, encounter_id)
    if claimed is None or captured is None:
        return
    current = service.read_for_change(caller, CLAIM, claimed.claim_id)
    body = current.resource or {}
    if body.get("status") != "draft":
        raise Conflict(Issue("business-rule", "The encounter's claim was submitted: its charges "
                             "are billed.", ["ChargeItem.status"]))  # fmt: skip
    lines = [new if s.address == new.address else s
             for s in claims.encounter_charges(caller.tenant, captured.charge_ids)]  # fmt: skip
    rebuilt = claims.claim_body(
        new.address.patient_id or "", [(s.address.resource_id, s.resource or {}) for s in lines],
        str(body.get("created")), str((body.get("provider") or {}).get("reference")),
    )  # fmt: skip
    rebuilt["id"] = current.address.resource_id
    service.stage_replace(uow, caller, CLAIM, current, rebuilt)


def correct(caller: Caller, charge_id: str, change: charges.Correction) -> Stored:
    current = service.read_for_change(caller, CHARGE_ITEM, charge_id)
    body = current.resource or {}
    if body.get("status") != "billable":
        raise Conflict(Issue("business-rule", "The charge is billed (its claim was submitted) "
                             "and can no longer be corrected.", ["ChargeItem.status"]))  # fmt: skip
    uow = UnitOfWork()
    new = service.stage_replace(uow, caller, CHARGE_ITEM, current,
                                charges.corrected(body, change, iso(now())))  # fmt: skip
    _stage_claim(uow, caller, _encounter_of(body), new)
    caller.audit.overrides = [f"charge-correction:{change.reason}"]
    caller.touched("ChargeItem", charge_id, current.address.patient_id, new.version)
    service.commit(caller, CHARGE_ITEM, uow, 200)
    return new
