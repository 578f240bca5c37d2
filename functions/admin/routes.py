"""Routes of the admin workflow (its operations beside the engine's FHIR routes).

    GET /admin/settings   the clinic's settings (functions/common/tenant_settings.py)
    PUT /admin/settings   replace them: {"unsignedNoteDays": 1..90, "psychotherapyRoles": [...]}

Administrators only; audited like every other request (one record each, at
tenant level: settings concern no patient).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Response

import functions.notes.access  # noqa: F401  (registers the note checks and views)
from functions.common import tenant_settings
from functions.common.authz import Op, Permission
from functions.common.http import RequestContext, fhir_view, read_json_body

bp = Blueprint(__name__)
ANY = ["*/*"]
JSON = "application/json; charset=utf-8"

SETTINGS_READ = Permission("TenantSettings", "config", Op.READ)
SETTINGS_UPDATE = Permission("TenantSettings", "config", Op.UPDATE)


def _current() -> Any:
    return bp.current_request


def _json(body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": JSON})


@bp.route("/admin/settings", methods=["GET"], content_types=ANY)
@fhir_view(_current, SETTINGS_READ)
def get_settings(ctx: RequestContext) -> Response:
    return _json(tenant_settings.to_json(tenant_settings.read(ctx.tenant)))


@bp.route("/admin/settings", methods=["PUT"], content_types=ANY)
@fhir_view(_current, SETTINGS_UPDATE)
def put_settings(ctx: RequestContext) -> Response:
    wanted = tenant_settings.from_json(read_json_body(ctx.request))
    saved = tenant_settings.put(ctx.tenant, wanted, ctx.caller.actor)
    return _json(tenant_settings.to_json(saved))
