"""Routes that carry no PHI: the CapabilityStatement and answers for unknown
resource types (404 OperationOutcome, as for any unknown route)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.errors import Issue, MethodNotAllowed, NotFound
from functions.common.http import base_url, fhir_response, public_view
from functions.fhir.capability import capability_statement

bp = Blueprint(__name__)
RELEASED = "2026-11-25"
ALL = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def _current() -> Any:
    return bp.current_request


@bp.route("/fhir/R4/metadata", methods=["GET"], content_types=["*/*"])
@public_view(_current)
def metadata(request: Request) -> Response:
    return fhir_response(capability_statement(base_url(request), RELEASED))


OTHER = ["POST", "PUT", "DELETE", "PATCH"]


@bp.route("/fhir/R4/AuditEvent", methods=OTHER, content_types=["*/*"])
@public_view(_current)
def audit_other_methods(request: Request) -> Response:
    raise _not_allowed(request.method, "GET")


def _not_allowed(method: str, allowed: str) -> MethodNotAllowed:
    return MethodNotAllowed(
        Issue("not-supported", f"{method} is not supported here; allowed: {allowed}."),
        headers={"Allow": allowed},
    )


def unknown_type(resource_type: str) -> NotFound:
    return NotFound(
        Issue(
            "not-supported",
            f"Resource type '{resource_type}' is not supported here; see /fhir/R4/metadata.",
        )
    )


@bp.route("/fhir/R4/{resource_type}", methods=ALL, content_types=["*/*"])
@public_view(_current)
def unknown_type_route(request: Request, resource_type: str) -> Response:
    raise unknown_type(resource_type)


@bp.route("/fhir/R4/{resource_type}/{resource_id}", methods=ALL, content_types=["*/*"])
@public_view(_current)
def unknown_instance_route(request: Request, resource_type: str, resource_id: str) -> Response:
    raise unknown_type(resource_type)
