"""Routes of the admin workflow (its operations beside the engine's FHIR routes).

    GET /admin/settings   the clinic's settings (functions/common/tenant_settings.py)
    PUT /admin/settings   replace them: {"unsignedNoteDays": 1..90, "psychotherapyRoles": [...]}

Administrators only; audited like every other request (one record each, at
tenant level: settings concern no patient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalice import Blueprint
from chalice.app import Response

import functions.notes.access  # noqa: F401  (registers the note checks and views)
from functions.common import tenant_settings
from functions.common.authz import POLICY, Op, Permission, Role
from functions.common.errors import Forbidden, Issue
from functions.common.http import RequestContext, fhir_view, read_json_body

bp = Blueprint(__name__)
ANY = ["*/*"]
JSON = "application/json; charset=utf-8"

SETTINGS_READ = Permission("TenantSettings", "config", Op.READ)
SETTINGS_UPDATE = Permission("TenantSettings", "config", Op.UPDATE)


@dataclass(frozen=True)
class _Door(Permission):
    """Until the authorization table has a TenantSettings row: a permission every
    role holds (the staff directory's read row), audited under the settings action;
    the route then admits administrators only."""

    action: str = ""

    @property
    def name(self) -> str:
        return self.action


def _door(permission: Permission) -> Permission:
    if (permission.resource_type, permission.data_class) in POLICY:
        return permission
    return _Door("Practitioner", "staff", Op.READ, action=permission.name)


def _current() -> Any:
    return bp.current_request


def _admin(ctx: RequestContext, permission: Permission) -> None:
    """Administrators only, whatever the door let in."""
    if Role.ADMIN not in ctx.principal.roles:
        raise Forbidden(Issue("forbidden", f"Your roles do not allow {permission.name}."))


def _json(body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": JSON})


@bp.route("/admin/settings", methods=["GET"], content_types=ANY)
@fhir_view(_current, _door(SETTINGS_READ))
def get_settings(ctx: RequestContext) -> Response:
    _admin(ctx, SETTINGS_READ)
    return _json(tenant_settings.to_json(tenant_settings.read(ctx.tenant)))


@bp.route("/admin/settings", methods=["PUT"], content_types=ANY)
@fhir_view(_current, _door(SETTINGS_UPDATE))
def put_settings(ctx: RequestContext) -> Response:
    _admin(ctx, SETTINGS_UPDATE)
    wanted = tenant_settings.from_json(read_json_body(ctx.request))
    saved = tenant_settings.put(ctx.tenant, wanted, ctx.caller.actor)
    return _json(tenant_settings.to_json(saved))
