"""Compliance routes (role `compliance` only; docs/compliance.md).

`GET /fhir/R4/AuditEvent?patient=<id>[&_count][&_cursor]`: a patient's live audit
trail (the records the API writes with each request), newest first.

The ledger (tamper-evident, fed by the audit pipeline a few seconds behind):
  `GET /audit/AuditEvent?patient=|agent=|date=...[&_count][&_cursor]`  query
  `GET /audit/$export?start=&end=[&_format=json|csv]`                  export a range
  `GET /audit/$verify`                                                  recompute the chain
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Response

from functions.audit import compliance, export, service
from functions.common.authz import AUDIT_READ, Op, Permission
from functions.common.bundle import bundle, link
from functions.common.http import RequestContext, fhir_response, fhir_view
from functions.engine.search import parse_count

bp = Blueprint(__name__)
ANY = ["*/*"]
JSON = "application/json; charset=utf-8"
LEDGER_SEARCH = AUDIT_READ  # queries and exports: `auditevent.search`
LEDGER_VERIFY = Permission("AuditEvent", "audit", Op.READ)  # `auditevent.read`


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


def _params(ctx: RequestContext) -> dict[str, list[str]]:
    raw = ctx.request.query_params
    return {k: list(raw.getlist(k)) for k in raw} if raw else {}


def _root(ctx: RequestContext) -> str:
    return ctx.base_url.removesuffix("/fhir/R4")


@bp.route("/audit/AuditEvent", methods=["GET"], content_types=ANY)
@fhir_view(_current, LEDGER_SEARCH)
def ledger_events(ctx: RequestContext) -> Response:
    params = _params(ctx)
    query = compliance.parse(params)
    found = compliance.search(ctx.tenant, ctx.audit, query)
    kept = [(k, v) for k, values in params.items() if k != "_cursor" for v in values]
    links = {"self": link(f"{_root(ctx)}/audit", "AuditEvent", kept)}
    if found.cursor:
        links["next"] = link(
            f"{_root(ctx)}/audit", "AuditEvent", [*kept, ("_cursor", found.cursor)]
        )
    entries = [{"resource": e, "search": {"mode": "match"}} for e in found.events]
    return fhir_response(bundle("searchset", entries, links))


@bp.route("/audit/$export", methods=["GET"], content_types=ANY)
@fhir_view(_current, LEDGER_SEARCH)
def ledger_export(ctx: RequestContext) -> Response:
    exported = export.export(ctx.tenant, ctx.audit, export.parse(_params(ctx)))
    disposition = f'attachment; filename="{exported.filename}"'
    headers: dict[str, str | list[str]] = {
        "Content-Type": exported.content_type,
        "Content-Disposition": disposition,
    }
    return Response(body=exported.body, status_code=200, headers=headers)


@bp.route("/audit/$verify", methods=["GET"], content_types=ANY)
@fhir_view(_current, LEDGER_VERIFY)
def ledger_verify(ctx: RequestContext) -> Response:
    report = compliance.verify_ledger(ctx.tenant, ctx.audit, _params(ctx))
    return Response(body=report.to_json(), status_code=200, headers={"Content-Type": JSON})
