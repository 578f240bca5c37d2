"""Routes of the plans workflow (its operations beside the engine's FHIR routes).

    POST /fhir/R4/CarePlan/{id}/$sign    sign a draft plan (If-Match optional)

200 with the active plan (ETag its version); its Provenance is found by
`GET /fhir/R4/Provenance?target=CarePlan/<id>` (docs/plans.md).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.authz import Op, Permission
from functions.common.http import RequestContext, fhir_response, fhir_view, http_date
from functions.plans import service
from models import keys

bp = Blueprint(__name__)
ANY = ["*/*"]
SIGN_PLAN = Permission("CarePlan", "phi", Op.SIGN)


def _current() -> Any:
    return bp.current_request


def _plan(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    """The plan the path names, and its patient (its compound id names them)."""
    plan_id = params["resource_id"]
    return "CarePlan", plan_id, keys.patient_of(plan_id)


@bp.route("/fhir/R4/CarePlan/{resource_id}/$sign", methods=["POST"], content_types=ANY)
@fhir_view(_current, SIGN_PLAN, _plan)
def sign_plan(ctx: RequestContext, resource_id: str) -> Response:
    done = service.sign(ctx.caller, resource_id, ctx.request.headers.get("if-match"))
    plan = done.plan
    headers = {
        "ETag": f'W/"{plan.version}"',
        "Last-Modified": http_date(plan.last_updated),
        "Content-Location": f"{ctx.base_url}/CarePlan/{resource_id}/_history/{plan.version}",
    }
    return fhir_response(plan.resource, 200, headers)
