"""The chart and the whole record of a patient.

    GET /fhir/R4/Patient/{id}/$chart        the chart in one Query (JSON, documented below)
    GET /fhir/R4/Patient/{id}/$everything   the record as a paged searchset Bundle

`$chart` answers a clinician's first look at a patient: demographics, active
problems, medications (with override reasons), allergies, flags and plans, the
last 12 scores per instrument (with the baseline) and the 20 most recent note
headers. It is a view for the application, not a FHIR resource; sections the
reader's role may not see are listed in `withheld`.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.charts import service
from functions.common.authz import Op, Permission
from functions.common.bundle import bundle, link
from functions.common.http import RequestContext, fhir_response, fhir_view
from functions.engine import registry
from functions.engine.search import parse_count

bp = Blueprint(__name__)
ANY = ["*/*"]
OWNER = registry.chart_owner()  # the Patient: whose chart it is
READ_OWNER = Permission(OWNER.fhir_type, OWNER.data_class, Op.READ)
BASE = f"/fhir/R4/{OWNER.fhir_type}/{{patient_id}}"


def _current() -> Any:
    return bp.current_request


def _patient(request: Request, params: dict[str, str]) -> tuple[str, str, str]:
    return OWNER.name, params["patient_id"], params["patient_id"]


@bp.route(f"{BASE}/$chart", methods=["GET"], content_types=ANY)
@fhir_view(_current, READ_OWNER, _patient)
def patient_chart(ctx: RequestContext, patient_id: str) -> Response:
    found = service.chart_of(ctx.caller, patient_id)
    return fhir_response(found.to_json())


@bp.route(f"{BASE}/$everything", methods=["GET"], content_types=ANY)
@fhir_view(_current, READ_OWNER, _patient)
def patient_everything(ctx: RequestContext, patient_id: str) -> Response:
    params: dict[str, str] = dict(ctx.request.query_params or {})
    count = max(parse_count(params.get("_count", "50"), f"{OWNER.fhir_type}.everything"), 1)
    cursor = params.get("_cursor")
    found, last = service.everything(ctx.caller, patient_id, count, cursor)
    entries = [
        {"fullUrl": f"{ctx.base_url}/{s.resource['resourceType']}/{s.address.resource_id}",
         "resource": s.resource, "search": {"mode": "match"}}
        for s in found if s.resource is not None
    ]  # fmt: skip
    path = f"{OWNER.fhir_type}/{patient_id}/$everything"
    kept = [("_count", str(count))]
    links = {"self": link(ctx.base_url, path, kept + ([("_cursor", cursor)] if cursor else []))}
    if last:
        links["next"] = link(ctx.base_url, path, [*kept, ("_cursor", last)])
    return fhir_response(bundle("searchset", entries, links))
