"""The view decorator and response helpers shared by every FHIR route.

Chalice's REST middleware never sees exceptions raised in views, so each view is
wrapped here: authenticate -> authorize -> run the view -> map errors through
the one error table -> write the audit record -> log one line without PHI.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice.app import Request, Response

from functions.common import auth
from functions.common.audit import AuditDraft
from functions.common.authz import Action, authorize
from functions.common.errors import (
    BUSY,
    INTERNAL,
    ApiError,
    Invalid,
    Issue,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    operation_outcome,
)
from functions.common.observability import logger
from functions.common.principal import Principal
from functions.common.settings import api_settings
from models.aws import retryable
from models.clock import new_id

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json")


@dataclass
class RequestContext:
    request: Request
    request_id: str
    principal: Principal
    audit: AuditDraft
    base_url: str

    @property
    def tenant(self) -> str:
        return self.principal.tenant


def fhir_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    all_headers: dict[str, str | list[str]] = {"Content-Type": FHIR_JSON, **(headers or {})}
    text = "" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(body=text, status_code=status, headers=all_headers)


def error_response(err: ApiError) -> Response:
    return fhir_response(operation_outcome(err.issues), err.status, err.headers)


def _request_id(request: Request) -> str:
    context = request.context or {}
    return str(context.get("requestId") or new_id())


def _source_ip(request: Request) -> str | None:
    identity = (request.context or {}).get("identity") or {}
    ip = identity.get("sourceIp")
    return str(ip) if ip else None


def base_url(request: Request) -> str:
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host") or "localhost"
    proto = headers.get("x-forwarded-proto") or ("http" if host.startswith("127.") else "https")
    stage = (request.context or {}).get("stage")
    prefix = f"/{stage}" if stage and stage != "$default" and "amazonaws.com" in host else ""
    return f"{proto}://{host}{prefix}/fhir/R4"


def read_json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 413/415/400 that names the problem."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise UnsupportedMediaType(
            Issue("not-supported", "Send application/fhir+json (or application/json).")
        )
    raw = request.raw_body or b""
    if len(raw) > api_settings().max_body_bytes:
        raise PayloadTooLarge(
            Issue("too-costly", f"The body exceeds {api_settings().max_body_bytes} bytes.")
        )
    if not raw.strip():
        raise Invalid(Issue("required", "The request body is empty."))
    try:
        parsed = json.loads(raw)
    except RecursionError:
        raise Invalid(Issue("structure", "The body is nested too deeply.")) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        pos = getattr(exc, "lineno", None)
        where = f" at line {pos} column {getattr(exc, 'colno', '?')}" if pos else ""
        raise Invalid(Issue("structure", f"The body is not valid JSON{where}.")) from None
    if not isinstance(parsed, dict):
        raise Invalid(Issue("structure", "The body must be a JSON object (a FHIR resource)."))
    return parsed


View = Callable[..., Response]


def fhir_view(
    current: Callable[[], Request], action: Action
) -> Callable[[View], Callable[..., Response]]:
    """Wrap a view that takes (ctx, **path_params) and returns a Response."""

    def decorate(view: View) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: str) -> Response:
            request = current()
            started = time.perf_counter()
            draft = AuditDraft(
                action=action.value,
                request_id=_request_id(request),
                route=str((request.context or {}).get("resourcePath", "")),
                source_ip=_source_ip(request),
            )
            if "patient_id" in params:
                draft.concerns("Patient", params["patient_id"], params["patient_id"])
            response = _run(view, request, draft, params, action)
            response = _audit(draft, response)
            _log(request, draft, response, started)
            return response

        return wrapper

    return decorate


def _run(
    view: View, request: Request, draft: AuditDraft, params: dict[str, str], action: Action
) -> Response:
    try:
        principal = auth.principal_from(request.headers)
        draft.tenant, draft.actor = principal.tenant, principal.sub
        draft.actor_name, draft.roles = principal.username, sorted(principal.roles)
        authorize(principal, action)
        ctx = RequestContext(request, draft.request_id, principal, draft, base_url(request))
        return view(ctx, **params)
    except ApiError as err:
        return error_response(err)
    except Exception as exc:
        if retryable(exc):
            logger.warning(
                "throttled", extra={"request_id": draft.request_id, "route": draft.route}
            )
            return error_response(ServiceUnavailable(BUSY, headers={"Retry-After": "1"}))
        logger.exception(
            "unhandled error", extra={"request_id": draft.request_id, "route": draft.route}
        )
        return error_response(ApiError(INTERNAL))


def _audit(draft: AuditDraft, response: Response) -> Response:
    try:
        draft.finish(response.status_code)
    except Exception:
        # No record, no data: a response that could not be audited is withheld.
        logger.exception("audit write failed", extra={"request_id": draft.request_id})
        return error_response(ApiError(INTERNAL))
    return response


def _log(request: Request, draft: AuditDraft, response: Response, started: float) -> None:
    logger.info(
        "request",
        extra={
            "request_id": draft.request_id,
            "method": request.method,
            "route": draft.route,
            "status": response.status_code,
            "tenant": draft.tenant,
            "actor": draft.actor,
            "action": draft.action,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


def public_view(current: Callable[[], Request]) -> Callable[[View], Callable[..., Response]]:
    """For routes that carry no PHI (metadata, unknown routes): errors mapped, not audited."""

    def decorate(view: View) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: str) -> Response:
            try:
                return view(current(), **params)
            except ApiError as err:
                return error_response(err)

        return wrapper

    return decorate
