"""Routes of the billing workflow (beside the engine's FHIR routes for ChargeItem and
Claim, which billers use to read and search them: `ChargeItem?patient=`,
`ChargeItem?context=Encounter/<id>`, `Claim?encounter=`).

    POST /fhir/R4/ChargeItem/{id}/$correct   correct a charge, with a reason
    POST /fhir/R4/Encounter/{id}/$claim      the encounter's claim (made once)
    POST /fhir/R4/Claim/{id}/$submit         submit a draft claim
    GET  /billing/worklist                   the biller work queue

Billers only (functions/common/authz.py); docs/billing.md has the rules.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.billing import claims, corrections, worklist
from functions.common.authz import Op, Permission
from functions.common.http import (
    RequestContext,
    fhir_response,
    fhir_view,
    http_date,
    read_json_body,
)
from models import keys
from models.resources import Stored

bp = Blueprint(__name__)
ANY = ["*/*"]
JSON = "application/json; charset=utf-8"
CORRECT = Permission("ChargeItem", "phi", Op.UPDATE)
WORK = Permission("ChargeItem", "phi", Op.SEARCH)
CLAIM = Permission("Claim", "phi", Op.CREATE)
SUBMIT = Permission("Claim", "phi", Op.UPDATE)


def _current() -> Any:
    return bp.current_request


def _about(kind: str) -> Any:
    def concerns(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
        rid = params["resource_id"]
        return kind, rid, keys.patient_of(rid)

    return concerns


def _written(stored: Stored, status: int = 200) -> Response:
    headers = {"ETag": f'W/"{stored.version}"', "Last-Modified": http_date(stored.last_updated)}
    return fhir_response(stored.resource, status, headers)


@bp.route("/fhir/R4/ChargeItem/{resource_id}/$correct", methods=["POST"], content_types=ANY)
@fhir_view(_current, CORRECT, _about("ChargeItem"))
def correct_charge(ctx: RequestContext, resource_id: str) -> Response:
    change = corrections.parse(read_json_body(ctx.request))
    return _written(corrections.correct(ctx.caller, resource_id, change))


@bp.route("/fhir/R4/Encounter/{resource_id}/$claim", methods=["POST"], content_types=ANY)
@fhir_view(_current, CLAIM, _about("Encounter"))
def claim_encounter(ctx: RequestContext, resource_id: str) -> Response:
    done = claims.claim(ctx.caller, resource_id)
    return _written(done.stored, 201 if done.created else 200)


@bp.route("/fhir/R4/Claim/{resource_id}/$submit", methods=["POST"], content_types=ANY)
@fhir_view(_current, SUBMIT, _about("Claim"))
def submit_claim(ctx: RequestContext, resource_id: str) -> Response:
    return _written(claims.submit(ctx.caller, resource_id))


@bp.route("/billing/worklist", methods=["GET"], content_types=ANY)
@fhir_view(_current, WORK)
def billing_worklist(ctx: RequestContext) -> Response:
    query: dict[str, str] = dict(ctx.request.query_params or {})
    count = worklist.parse_count(query.get("_count"))
    rows, after = worklist.work_page(ctx.caller, count, worklist.parse_cursor(query.get("_cursor")))
    body: dict[str, Any] = {"items": rows}
    if after is not None:
        body["next"] = {"_cursor": after, "_count": count}
    return Response(body=body, status_code=200, headers={"Content-Type": JSON})
