"""Compliance: a patient's audit trail as FHIR AuditEvent resources, newest first.

`GET /fhir/R4/AuditEvent?patient=<id>[&_count=n][&_cursor=c]`
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Response

from functions.audit import service
from functions.common.authz import AUDIT_READ
from functions.common.bundle import bundle, link
from functions.common.http import RequestContext, fhir_response, fhir_view
from functions.engine.search import parse_count

bp = Blueprint(__name__)
ANY = ["*/*"]


def _current() -> Any:
    return bp.current_request


@bp.route("/fhir/R4/AuditEvent", methods=["GET"], content_types=ANY)
@fhir_view(_current, AUDIT_READ)
def audit_events(ctx: RequestContext) -> Response:
    params: dict[str, str] = dict(ctx.request.query_params or {})
    query = service.parse(params)
    count = max(parse_count(params.get("_count", "50"), "AuditEvent.search"), 1)
    page = service.patient_audit(ctx.tenant, ctx.audit, query, count)
    kept = [("patient", query.patient_id), ("_count", str(count))]
    links = {"self": link(ctx.base_url, "AuditEvent", kept)}
    if page.next_cursor:
        links["next"] = link(ctx.base_url, "AuditEvent", [*kept, ("_cursor", page.next_cursor)])
    entries = [
        {
            "fullUrl": f"{ctx.base_url}/AuditEvent/{e['id']}",
            "resource": e,
            "search": {"mode": "match"},
        }
        for e in page.events
    ]
    return fhir_response(bundle("searchset", entries, links))
