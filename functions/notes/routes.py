"""Routes of the notes workflow, beside the engine's FHIR routes for DocumentReference
(create, read, update with If-Match, delete, history, search):

    POST   /fhir/R4/DocumentReference/{id}/$sign     the author signs (200, the note)
    POST   /fhir/R4/DocumentReference/{id}/$cosign   the trainee's supervisor co-signs
    GET    /notes/cosign-queue                       notes awaiting my co-signature
    GET    /notes/unsigned                           overdue drafts (mine, my trainees')
    GET    /notes/templates                          built-in + the clinic's own templates
    GET    /notes/templates/{key}                    one template, with its draft text
    PUT    /notes/templates/{key}                    save one of the clinic's own
    DELETE /notes/templates/{key}                    delete one of the clinic's own

Templates (no PHI) are read by the roles that write notes (clinician, prescriber,
supervisor) and by admin, and written by supervisor and admin: the policy table has
no row for them, so the door (`fhir_view`'s permission) is the staff directory's
read row, which every role holds and which discloses nothing here, under the
audit action `notetemplate.<op>`; the rule itself is checked in each view.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.authz import Op, Permission, allowed
from functions.common.bundle import bundle
from functions.common.http import (
    RequestContext,
    fhir_response,
    fhir_view,
    http_date,
    read_json_body,
)
from functions.engine import registry
from functions.engine.registry import ResourceType
from functions.engine.routes import by_id, visible
from functions.notes import service
from functions.notes.declarations import DOCUMENT_REFERENCE, PSYCHOTHERAPY_NOTE
from functions.notes.templates import Template, render, template_to_json
from models import keys
from models.resources import Stored

bp = Blueprint(__name__)
ANY = ["*/*"]
NOTE = DOCUMENT_REFERENCE.fhir_type
SIGN_NOTE = Permission(NOTE, DOCUMENT_REFERENCE.data_class, Op.SIGN)
SEARCH_NOTES = Permission(NOTE, DOCUMENT_REFERENCE.data_class, Op.SEARCH)


def _template_permission(op: Op) -> Permission:
    return Permission("NoteTemplate", "config", op)


def _current() -> Any:
    return bp.current_request


def _concerns(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    rid = params["resource_id"]
    return registry.for_id(DOCUMENT_REFERENCE, rid).name, rid, keys.patient_of(rid)


def _seen(ctx: RequestContext) -> service.Seen:
    """The after-load checks and role view of a note about to change (hidden: 404)."""

    def seen(decl: ResourceType, stored: Stored) -> Stored:
        shown = visible(ctx, decl, stored)
        if shown is None:
            raise service.missing(decl)
        return shown

    return seen


def _shown(ctx: RequestContext) -> Any:
    return lambda decl, stored: visible(ctx, decl, stored)


def _note_response(stored: Stored) -> Response:
    headers = {"ETag": f'W/"{stored.version}"', "Last-Modified": http_date(stored.last_updated)}
    return fhir_response(stored.resource, 200, headers)


@bp.route(f"/fhir/R4/{NOTE}/{{resource_id}}/$sign", methods=["POST"], content_types=ANY)
@fhir_view(_current, SIGN_NOTE, _concerns)
def sign_note(ctx: RequestContext, resource_id: str) -> Response:
    decl = by_id(ctx, DOCUMENT_REFERENCE, resource_id, Op.SIGN)
    if_match = ctx.request.headers.get("if-match")
    signed = service.sign(ctx.caller, decl, resource_id, if_match, _seen(ctx))
    return _note_response(_seen(ctx)(decl, signed))


@bp.route(f"/fhir/R4/{NOTE}/{{resource_id}}/$cosign", methods=["POST"], content_types=ANY)
@fhir_view(_current, SIGN_NOTE, _concerns)
def cosign_note(ctx: RequestContext, resource_id: str) -> Response:
    decl = by_id(ctx, DOCUMENT_REFERENCE, resource_id, Op.SIGN)
    if_match = ctx.request.headers.get("if-match")
    cosigned = service.cosign(ctx.caller, decl, resource_id, if_match, _seen(ctx))
    return _note_response(_seen(ctx)(decl, cosigned))


# ----------------------------------------------------------------- worklists


def _searchable(ctx: RequestContext) -> list[ResourceType]:
    """The note declarations the caller may search (psychotherapy notes: its row)."""
    variant = Permission(NOTE, PSYCHOTHERAPY_NOTE.data_class, Op.SEARCH)
    return [DOCUMENT_REFERENCE] + ([PSYCHOTHERAPY_NOTE] if allowed(ctx.principal, variant) else [])


def _worklist(ctx: RequestContext, path: str, found: list[Stored]) -> Response:
    root = ctx.base_url.rsplit("/fhir/R4", 1)[0]
    entries = [{"fullUrl": f"{ctx.base_url}/{NOTE}/{s.address.resource_id}",
                "resource": s.resource, "search": {"mode": "match"}} for s in found]  # fmt: skip
    return fhir_response({**bundle("searchset", entries, {"self": f"{root}{path}"}),
                          "total": len(entries)})  # fmt: skip


@bp.route("/notes/cosign-queue", methods=["GET"], content_types=ANY)
@fhir_view(_current, SEARCH_NOTES)
def cosign_queue(ctx: RequestContext) -> Response:
    found = service.cosign_queue(ctx.caller, _searchable(ctx), _shown(ctx))
    return _worklist(ctx, "/notes/cosign-queue", found)


@bp.route("/notes/unsigned", methods=["GET"], content_types=ANY)
@fhir_view(_current, SEARCH_NOTES)
def unsigned_notes(ctx: RequestContext) -> Response:
    found = service.unsigned(ctx.caller, _searchable(ctx), _shown(ctx))
    return _worklist(ctx, "/notes/unsigned", found)


# ----------------------------------------------------------------- templates


def _template(template: Template, built_in: bool, draft: bool = False) -> dict[str, Any]:
    out = {**template_to_json(template), "builtIn": built_in}
    return {**out, "draft": render(template)} if draft else out


@bp.route("/notes/templates", methods=["GET"], content_types=ANY)
@fhir_view(_current, _template_permission(Op.SEARCH))
def list_templates(ctx: RequestContext) -> Response:
    found = service.list_templates(ctx.tenant)
    return fhir_response({"templates": [_template(t, b) for t, b in found]})


@bp.route("/notes/templates/{key}", methods=["GET"], content_types=ANY)
@fhir_view(_current, _template_permission(Op.READ))
def get_template(ctx: RequestContext, key: str) -> Response:
    template, built_in = service.get_template(ctx.tenant, key)
    return fhir_response(_template(template, built_in, draft=True))


@bp.route("/notes/templates/{key}", methods=["PUT"], content_types=ANY)
@fhir_view(_current, _template_permission(Op.UPDATE))
def put_template(ctx: RequestContext, key: str) -> Response:
    template = service.put_template(ctx.caller, key, read_json_body(ctx.request))
    return fhir_response(_template(template, False, draft=True))


@bp.route("/notes/templates/{key}", methods=["DELETE"], content_types=ANY)
@fhir_view(_current, _template_permission(Op.DELETE))
def delete_template(ctx: RequestContext, key: str) -> Response:
    service.delete_template(ctx.caller, key)
    return fhir_response(None, 204)
