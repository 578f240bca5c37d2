"""Patient routes (FHIR R4 REST): parse -> principal -> authorize -> use case -> response."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Response

from functions.common.authz import Action, allowed
from functions.common.bundle import bundle, history_entry, link
from functions.common.http import (
    RequestContext,
    fhir_response,
    fhir_view,
    http_date,
    read_json_body,
)
from functions.patients import service
from functions.patients.search import parse_before_version, parse_count
from functions.patients.service import Stored

bp = Blueprint(__name__)
ANY = ["*/*"]  # content types are checked by read_json_body, to answer 415 as FHIR


def _current() -> Any:
    return bp.current_request


def _headers(ctx: RequestContext, stored: Stored, location: bool = False) -> dict[str, str]:
    pid = stored.resource["id"]
    headers = {"ETag": f'W/"{stored.version}"', "Last-Modified": http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{ctx.base_url}/Patient/{pid}/_history/{stored.version}"
    return headers


def _params(ctx: RequestContext) -> dict[str, list[str]]:
    raw = ctx.request.query_params
    return {k: list(raw.getlist(k)) for k in raw} if raw else {}


@bp.route("/fhir/R4/Patient", methods=["POST"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_CREATE)
def create(ctx: RequestContext) -> Response:
    may_label = allowed(ctx.principal, Action.PATIENT_LABEL)
    stored = service.create_patient(ctx.tenant, ctx.audit, read_json_body(ctx.request), may_label)
    return fhir_response(stored.resource, 201, _headers(ctx, stored, location=True))


@bp.route("/fhir/R4/Patient", methods=["GET"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_SEARCH)
def search(ctx: RequestContext) -> Response:
    params = _params(ctx)
    page = service.search_patients(ctx.tenant, ctx.audit, params)
    entries = [
        {"fullUrl": f"{ctx.base_url}/Patient/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in page.resources
    ]
    kept = [(k, v) for k, vs in sorted(params.items()) if k != "_cursor" for v in vs]
    links = {
        "self": link(
            ctx.base_url,
            "Patient",
            [*kept] + ([("_cursor", params["_cursor"][0])] if "_cursor" in params else []),
        )
    }
    if page.next_cursor:
        links["next"] = link(ctx.base_url, "Patient", [*kept, ("_cursor", page.next_cursor)])
    return fhir_response(bundle("searchset", entries, links))


@bp.route("/fhir/R4/Patient/{patient_id}", methods=["GET"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_READ)
def read(ctx: RequestContext, patient_id: str) -> Response:
    stored = service.read_patient(ctx.tenant, ctx.audit, patient_id)
    return fhir_response(stored.resource, 200, _headers(ctx, stored))


@bp.route("/fhir/R4/Patient/{patient_id}", methods=["PUT"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_UPDATE)
def update(ctx: RequestContext, patient_id: str) -> Response:
    if_match = ctx.request.headers.get("if-match")
    body = read_json_body(ctx.request)
    may_label = allowed(ctx.principal, Action.PATIENT_LABEL)
    stored = service.update_patient(ctx.tenant, ctx.audit, patient_id, body, if_match, may_label)
    return fhir_response(stored.resource, 200, _headers(ctx, stored))


@bp.route("/fhir/R4/Patient/{patient_id}", methods=["DELETE"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_DELETE)
def delete(ctx: RequestContext, patient_id: str) -> Response:
    service.delete_patient(ctx.tenant, ctx.audit, patient_id)
    return fhir_response(None, 204)


@bp.route("/fhir/R4/Patient/{patient_id}/_history", methods=["GET"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_HISTORY)
def history(ctx: RequestContext, patient_id: str) -> Response:
    params = _params(ctx)
    count = parse_count(params.get("_count", ["20"])[0], "Patient.history")
    before = parse_before_version(params.get("_before_version", [None])[0])
    since = service.parse_since(params.get("_since", [None])[0])
    kept = [("_count", str(count))] + ([("_since", since)] if since else [])
    entries, next_before = service.history(ctx.tenant, ctx.audit, patient_id, count, before, since)
    items = [
        history_entry(ctx.base_url, f"Patient/{patient_id}", e.version, e.last_updated, e.resource)
        for e in entries
    ]
    links = {"self": link(ctx.base_url, f"Patient/{patient_id}/_history", kept)}
    if next_before:
        links["next"] = link(
            ctx.base_url,
            f"Patient/{patient_id}/_history",
            [*kept, ("_before_version", str(next_before))],
        )
    return fhir_response(bundle("history", items, links))


@bp.route("/fhir/R4/Patient/{patient_id}/_history/{version_id}", methods=["GET"], content_types=ANY)
@fhir_view(_current, Action.PATIENT_HISTORY)  # an old version is history, whatever its number
def vread(ctx: RequestContext, patient_id: str, version_id: str) -> Response:
    stored = service.read_version(ctx.tenant, ctx.audit, patient_id, version_id)
    return fhir_response(stored.resource, 200, _headers(ctx, stored))
