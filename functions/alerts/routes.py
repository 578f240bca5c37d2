"""Routes of the safety-alerts workflow (docs/alerts.md).

    GET  /worklist                       the signed-in user's open alerts, newest first
                                         (a searchset Bundle of FHIR Tasks)
    POST /worklist/{id}/$acknowledge     close one with a note: Parameters {note: valueString}

The care roles (clinician, prescriber, supervisor) reach these routes (policy row
`Task`/`safety-alert`); others get 403. An alert that is not in one of the caller's
queues answers 404, whether it exists or not. Every request is audited: the list
names each patient listed, an acknowledgement the alert's patient (its record is
written in the acknowledgement's own transaction).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Response

from functions.alerts import worklist
from functions.common.authz import Op, Permission
from functions.common.bundle import bundle
from functions.common.http import RequestContext, fhir_response, fhir_view, read_json_body

bp = Blueprint(__name__)
ANY = ["*/*"]

WORKLIST_READ = Permission("Task", "safety-alert", Op.READ)
ACKNOWLEDGE = Permission("Task", "safety-alert", Op.UPDATE)


def _current() -> Any:
    return bp.current_request


def _root(ctx: RequestContext) -> str:
    return ctx.base_url.removesuffix("/fhir/R4")


@bp.route("/worklist", methods=["GET"], content_types=ANY)
@fhir_view(_current, WORKLIST_READ)
def list_worklist(ctx: RequestContext) -> Response:
    tasks = worklist.open_tasks(ctx.caller)
    entries = [{"resource": t, "search": {"mode": "match"}} for t in tasks]
    out = bundle("searchset", entries, {"self": f"{_root(ctx)}/worklist"})
    return fhir_response({**out, "total": len(entries)})


@bp.route("/worklist/{task_id}/$acknowledge", methods=["POST"], content_types=ANY)
@fhir_view(_current, ACKNOWLEDGE)
def acknowledge(ctx: RequestContext, task_id: str) -> Response:
    note = worklist.parse_note(read_json_body(ctx.request))
    return fhir_response(worklist.acknowledge(ctx.caller, task_id, note))
