"""The view decorator and response helpers shared by every FHIR route.

Chalice's REST middleware never sees exceptions raised in views, so each view is
wrapped here: authenticate -> authorize -> run the view -> map errors through
the one error table -> write the audit record -> log one line without PHI.

Every response of a view on PHI says `Cache-Control: no-store`, errors included.
Links (Location, fullUrl, Bundle links) are built from the configured public
base URL only: Host and X-Forwarded-* headers never reach a response.
A request without a valid token writes nothing to the table (it has no tenant):
it is logged and counted in the `UnauthenticatedRequests` metric.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from chalice.app import Request, Response

from functions.common import auth, json_walk
from functions.common.audit import AuditDraft
from functions.common.authz import Permission, authorize
from functions.common.caller import Caller, bound, purpose_from
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
from functions.common.json_walk import MAX_JSON_DEPTH, child_path
from functions.common.observability import count, logger
from functions.common.principal import Principal
from functions.common.settings import api_settings
from models.aws import retryable
from models.clock import new_id

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json")


@dataclass
class RequestContext:
    request: Request
    caller: Caller
    base_url: str

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    @property
    def audit(self) -> AuditDraft:
        return self.caller.audit

    @property
    def tenant(self) -> str:
        return self.caller.tenant


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


_API_ID = re.compile(r"^[a-z0-9]{10}$")
_STAGE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def base_url(request: Request) -> str:
    """The FHIR base of every link: EMR_PUBLIC_BASE_URL when set. Otherwise, behind
    API Gateway, its own execute-api URL built from the API id and stage that API
    Gateway puts in the request context (the template cannot pass that URL to the
    function: the API already depends on the function); locally, the local URL.
    Request headers (Host, X-Forwarded-*) are never used."""
    settings = api_settings()
    if settings.public_base_url_configured:
        return settings.public_base_url
    context = request.context or {}
    api_id, stage = str(context.get("apiId") or ""), str(context.get("stage") or "")
    if _API_ID.match(api_id) and _STAGE.match(stage) and stage != "$default":
        return f"https://{api_id}.execute-api.{settings.region}.amazonaws.com/{stage}/fhir/R4"
    return settings.public_base_url


def http_date(instant: str) -> str:
    """An ISO-8601 instant as an HTTP-date (RFC 9110), e.g. for Last-Modified."""
    return format_datetime(datetime.fromisoformat(instant), usegmt=True)


def read_json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 413/415/400 that names the problem.

    Rules (docs/input-validation.md): media type application/fhir+json or
    application/json, charset utf-8 if one is named; at most `max_body_bytes`;
    UTF-8 text; no duplicate keys; at most MAX_JSON_DEPTH levels of objects and
    arrays; finite numbers of at most MAX_NUMBER_CHARS characters; no unpaired
    surrogate escapes. Refusals name the element (never its value)."""
    root = _body_type(request)
    _check_media_type(request.headers.get("content-type"))
    raw = request.raw_body or b""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > api_settings().max_body_bytes:
        raise PayloadTooLarge(
            Issue("too-costly", f"The body exceeds {api_settings().max_body_bytes} bytes.", [root])
        )
    text = _utf8_text(data, root)
    if not text.strip():
        raise Invalid(Issue("required", "The request body is empty.", [root]))
    parsed = _parse_json(text, root)
    if not isinstance(parsed, dict):
        raise Invalid(
            Issue("structure", "The body must be a JSON object (a FHIR resource).", [root])
        )
    issues = json_body_issues(parsed, root)
    if issues:
        raise Invalid(issues)
    return parsed


MAX_NUMBER_CHARS = 32  # characters of one JSON number (FHIR integers need 11)
MAX_BODY_ISSUES = 20  # issues listed in one OperationOutcome
_ROUTE_TYPE = re.compile(r"/fhir/R4/([A-Z][A-Za-z]{0,63})(?:/|$)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings and brackets


def _body_type(request: Request) -> str:
    """The resource type the route expects: the root of every body expression."""
    route = str((request.context or {}).get("resourcePath") or "")
    match = _ROUTE_TYPE.match(route)
    return match.group(1) if match else "Resource"


def _check_media_type(header: str | None) -> None:
    media, *params = (header or "").split(";")
    if media.strip().lower() not in JSON_TYPES:
        raise UnsupportedMediaType(
            Issue(
                "not-supported",
                "Send application/fhir+json (or application/json).",
                ["Content-Type"],
            )
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(
                Issue(
                    "not-supported",
                    "Bodies are UTF-8: send charset=utf-8 or no charset.",
                    ["Content-Type"],
                )
            )


def _utf8_text(data: bytes, root: str) -> str:
    """Strict UTF-8 (a leading byte order mark is ignored, as RFC 8259 allows).
    NUL never appears in JSON text: it is what UTF-16 and UTF-32 look like here."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise Invalid(Issue("structure", "The body is not UTF-8 text.", [root]))
    return text.removeprefix("\ufeff")


class _Refused:
    """Stands in for a number the parser refused, so the scan can name its element."""

    __slots__ = ()


class _DuplicateKeys(dict[str, Any]):
    """An object in which a key appeared more than once (json keeps the last one)."""

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]) -> None:
        super().__init__(pairs)
        self.duplicates = duplicates


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    duplicates = []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return _DuplicateKeys(pairs, duplicates)


def _json_int(literal: str) -> int | _Refused:
    # int() of a long literal is quadratic and, past 4300 digits, a ValueError.
    return int(literal) if len(literal) <= MAX_NUMBER_CHARS else _Refused()


def _json_float(literal: str) -> float | _Refused:
    value = float(literal) if len(literal) <= MAX_NUMBER_CHARS else math.inf
    return value if math.isfinite(value) else _Refused()


def _json_constant(_literal: str) -> _Refused:
    return _Refused()  # NaN, Infinity, -Infinity: accepted by Python, not by JSON


def _parse_json(text: str, root: str) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_json_object,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
        )
    except RecursionError:
        message = f"Nested more than {MAX_JSON_DEPTH} levels deep."
        raise Invalid(Issue("structure", message, [_too_deep_element(text, root)])) from None
    except json.JSONDecodeError as exc:
        message = f"The body is not valid JSON at line {exc.lineno} column {exc.colno}."
        raise Invalid(Issue("structure", message, [root])) from None
    except ValueError:
        raise Invalid(Issue("structure", "The body is not valid JSON.", [root])) from None


def _too_deep_element(text: str, root: str) -> str:
    """The top-level element under which `text` nests too deeply (only called when
    the parser gave up, so the text is never parsed into objects here)."""
    depth, key = 0, ""
    for match in _JSON_TOKEN.finditer(text):
        lexeme = match.group()
        if lexeme.startswith('"'):
            key = lexeme[1:-1] if depth == 1 else key
        elif lexeme in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return child_path(root, key)
        else:
            depth -= 1
    return root


def _node_issue(node: Any, path: str) -> Issue | None:
    if isinstance(node, _Refused):
        message = f"Must be a finite JSON number of at most {MAX_NUMBER_CHARS} characters."
        return Issue("value", message, [path])
    if isinstance(node, str) and _LONE_SURROGATE.search(node):
        return Issue("value", "Unpaired surrogate escape: not Unicode text.", [path])
    return None


def _object_issues(node: dict[str, Any], path: str) -> list[Issue]:
    issues = [
        Issue("structure", "Key given more than once.", [child_path(path, key)])
        for key in getattr(node, "duplicates", ())
    ]
    if any(_LONE_SURROGATE.search(key) for key in node):
        issues.append(Issue("structure", "Unpaired surrogate escape in a key.", [path]))
    return issues


def _text_ok(text: str) -> bool:
    return text.isascii() or not _LONE_SURROGATE.search(text)


def _issues_of(node: Any, path: str) -> list[Issue]:
    if isinstance(node, dict):
        return _object_issues(node, path)
    if isinstance(node, list):
        return []
    issue = _node_issue(node, path)
    return [issue] if issue else []


def json_body_issues(body: dict[str, Any], root: str) -> list[Issue]:
    """Duplicate keys, nesting depth, refused numbers, unpaired surrogates, found by
    the shared iterative walk (functions/common/json_walk.py)."""
    if json_walk.clean(body, _text_ok, (_Refused, _DuplicateKeys)):
        return []
    return json_walk.issues(body, root, _issues_of, MAX_BODY_ISSUES)


View = Callable[..., Response]
Concerns = Callable[[Request, dict[str, str]], "tuple[str, str, str | None] | None"]


def fhir_view(
    current: Callable[[], Request], permission: Permission, concerns: Concerns | None = None
) -> Callable[[View], Callable[..., Response]]:
    """Wrap a view that takes (ctx, **path_params) and returns a Response.
    `permission` is checked before the view runs; `concerns` names the resource
    (type, id, patient) the path or the search's patient points at, so that even
    a refused or failed request is audited in that patient's trail."""

    def decorate(view: View) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: str) -> Response:
            request = current()
            started = time.perf_counter()
            draft = AuditDraft(
                action=permission.name,
                request_id=_request_id(request),
                route=str((request.context or {}).get("resourcePath", "")),
                source_ip=_source_ip(request),
            )
            if concerns is not None:
                _note_concerns(draft, concerns, request, params)
            response = _run(view, request, draft, params, permission)
            response = _audit(request, draft, response)
            response.headers["Cache-Control"] = "no-store"  # every response here may hold PHI
            _log(request, draft, response, started)
            return response

        return wrapper

    return decorate


def _note_concerns(
    draft: AuditDraft, concerns: Concerns, request: Request, params: dict[str, str]
) -> None:
    """What the request is about, for its audit record; a request too malformed to
    say is audited at tenant level (and answered by the view as it deserves)."""
    try:
        about = concerns(request, params)
    except Exception:
        logger.warning("request subject not derivable", extra={"request_id": draft.request_id})
        return
    if about is not None:
        draft.concerns(*about)


def _run(
    view: View, request: Request, draft: AuditDraft, params: dict[str, str], permission: Permission
) -> Response:
    try:
        principal = auth.principal_from(request.headers)
        draft.tenant, draft.actor = principal.tenant, principal.sub
        draft.actor_name, draft.roles = principal.username, sorted(principal.roles)
        draft.purpose = purpose_from(request.headers)  # recorded even when refused
        authorize(principal, permission)
        caller = Caller(principal, draft.request_id, draft, purpose_of_use=draft.purpose)
        ctx = RequestContext(request, caller, base_url(request))
        with bound(caller):
            return view(ctx, **params)
    except auth.AuthenticationFailed as err:
        draft.refusal = err.reason
        return error_response(err)
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


def _audit(request: Request, draft: AuditDraft, response: Response) -> Response:
    if draft.tenant is None:
        _unauthenticated(request, draft, response.status_code)
        return response
    try:
        draft.finish(response.status_code)
    except Exception:
        # No record, no data: a response that could not be audited is withheld.
        logger.exception("audit write failed", extra={"request_id": draft.request_id})
        return error_response(ApiError(INTERNAL))
    return response


def _unauthenticated(request: Request, draft: AuditDraft, status: int) -> None:
    """No verified tenant: nothing is written to the table (a flood of token-less
    requests must not turn into a flood of items). Logged without PHI (the route
    template, not the path) and counted; an error before authentication finished
    (e.g. the key set could not be fetched) is logged by `_run` and not counted."""
    if status != 401:
        return
    reason = draft.refusal or "unknown"
    logger.warning(
        "unauthenticated request",
        extra={
            "request_id": draft.request_id,
            "method": request.method,
            "route": draft.route,
            "source_ip": draft.source_ip,
            "reason": reason,
        },
    )
    count("UnauthenticatedRequests", reason=reason)


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
