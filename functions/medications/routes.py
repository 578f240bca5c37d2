"""Routes of the medications workflow (its operations beside the engine's FHIR routes).

    POST /fhir/R4/MedicationRequest/{id}/$discontinue   stop, cancel or complete an order
    GET  /fhir/R4/Patient/{id}/$medications              the medication list (a FHIR List)

Prescribing and changing are the engine's create and update of MedicationRequest;
docs/medications.md has the rules and where each is checked.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.authz import Op, Permission
from functions.common.errors import Issue, NotFound
from functions.common.http import (
    RequestContext,
    fhir_response,
    fhir_view,
    http_date,
    read_json_body,
)
from functions.engine import registry
from functions.engine.routes import visible
from functions.medications import discontinue, listing, service
from models import keys
from models.clock import iso, now

bp = Blueprint(__name__)
ANY = ["*/*"]
ORDER = "MedicationRequest"
UPDATE = Permission(ORDER, "phi", Op.UPDATE)
SEARCH = Permission(ORDER, "phi", Op.SEARCH)


def _current() -> Any:
    return bp.current_request


def _order(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    rid = params["resource_id"]
    return ORDER, rid, keys.patient_of(rid)


def _chart(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    return ORDER, "", params["patient_id"]


@bp.route(f"/fhir/R4/{ORDER}/{{resource_id}}/$discontinue", methods=["POST"],
          content_types=ANY)  # fmt: skip
@fhir_view(_current, UPDATE, _order)
def discontinue_order(ctx: RequestContext, resource_id: str) -> Response:
    request = discontinue.parse_discontinue(read_json_body(ctx.request))
    current = discontinue.current_order(ctx.caller, resource_id)
    if visible(ctx, registry.require(ORDER), current) is None:
        raise NotFound(Issue("not-found", f"{ORDER}/{resource_id} is not known.", [f"{ORDER}.id"]))
    done = discontinue.discontinue(ctx.caller, current, request)
    headers = {"ETag": f'W/"{done.version}"', "Last-Modified": http_date(done.last_updated)}
    return fhir_response(done.resource, 200, headers)


@bp.route("/fhir/R4/Patient/{patient_id}/$medications", methods=["GET"], content_types=ANY)
@fhir_view(_current, SEARCH, _chart)
def patient_medications(ctx: RequestContext, patient_id: str) -> Response:
    rows = service.medication_list(ctx.caller, patient_id)
    return fhir_response(listing.medication_list(patient_id, rows, iso(now())))
