"""The route factory: FHIR R4 REST routes for every registered type, on one
Blueprint. Each view parses, authorizes (the role x type x class x operation
table, before the call), calls a generic use case and shapes the response.

Per type `T`:

    POST   /fhir/R4/T                     create (conditional with If-None-Exist or ?criteria)
    GET    /fhir/R4/T                     search
    POST   /fhir/R4/T/_search             search, criteria in a form body
    GET    /fhir/R4/T/{id}                read
    PUT    /fhir/R4/T/{id}                update (If-Match optional)
    DELETE /fhir/R4/T/{id}                delete
    GET    /fhir/R4/T/{id}/_history       history
    GET    /fhir/R4/T/{id}/_history/{v}   vread

Other methods on these paths answer 405 with `Allow`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.authz import Op, Permission, allowed, check_loaded, shown
from functions.common.bundle import bundle, history_entry, link
from functions.common.errors import (
    Gone,
    Invalid,
    Issue,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    UnsupportedMediaType,
    operation_outcome,
)
from functions.common.http import (
    RequestContext,
    fhir_response,
    fhir_view,
    http_date,
    public_view,
    read_json_body,
)
from functions.engine import registry, search, service
from functions.engine.registry import ResourceType
from functions.engine.search import DEFAULT_COUNT, XML_FORMATS
from models import keys
from models.resources import Stored

bp = Blueprint(__name__)
ANY = ["*/*"]  # content types are checked by read_json_body, to answer 415 as FHIR
FORM = "application/x-www-form-urlencoded"
JSON_ACCEPT = ("application/fhir+json", "application/json", "*/*", "application/*", "json")
PREFER_RETURNS = ("minimal", "representation", "OperationOutcome")


def _current() -> Any:
    return bp.current_request


def _params(request: Request) -> dict[str, list[str]]:
    raw = request.query_params
    return {k: list(raw.getlist(k)) for k in raw} if raw else {}


def _check_accept(request: Request) -> None:
    """JSON is the only format: an Accept or _format naming only XML (or anything
    else) is answered 406."""
    formats = request.query_params.get("_format") if request.query_params else None
    if formats and formats.lower() in XML_FORMATS:
        raise NotAcceptable(Issue("not-supported", "Only JSON is served.", ["_format"]))
    accept = (request.headers.get("accept") or "").lower()
    if accept and not any(t in accept for t in JSON_ACCEPT):
        raise NotAcceptable(
            Issue("not-supported", "Only application/fhir+json is served.", ["Accept"])
        )


def _prefer(request: Request) -> str:
    for part in (request.headers.get("prefer") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"') in PREFER_RETURNS:
            return value.strip().strip('"')
    return "representation"


def _headers(ctx: RequestContext, stored: Stored, location: bool = False) -> dict[str, str]:
    headers = {"ETag": f'W/"{stored.version}"', "Last-Modified": http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{ctx.base_url}/{_ref(stored)}/_history/{stored.version}"
    return headers


def _written(ctx: RequestContext, stored: Stored, status: int, location: bool) -> Response:
    headers = _headers(ctx, stored, location)
    prefer = _prefer(ctx.request)
    if prefer == "minimal":
        return fhir_response(None, status, headers)
    if prefer == "OperationOutcome":
        done = Issue("informational", f"{_ref(stored)} stored as version "
                     f"{stored.version}.", severity="information")  # fmt: skip
        return fhir_response(operation_outcome([done]), status, headers)
    return fhir_response(stored.resource, status, headers)


def _ref(stored: Stored) -> str:
    """`<FHIR type>/<id>`: a variant's bodies are of the type it belongs to."""
    body_type = (stored.resource or {}).get("resourceType")
    kind = body_type if isinstance(body_type, str) else stored.address.resource_type
    return f"{kind}/{stored.address.resource_id}"


def admit(ctx: RequestContext, decl: ResourceType, op: Op, about_id: bool) -> None:
    """A variant's own policy row, once the request shows it is about one (its id,
    body or search criteria): refused requests about an id get 404, so that the
    existence of, e.g., a psychotherapy note is never disclosed; a refused create or
    search gets 403."""
    if decl.variant is None or allowed(ctx.principal, Permission(decl.fhir_type,
                                                                 decl.data_class, op)):
        return
    if about_id:
        raise NotFound(Issue("not-found", f"{decl.fhir_type} is not known.",
                             [f"{decl.fhir_type}.id"]))  # fmt: skip
    from functions.common.authz import authorize

    authorize(ctx.principal, Permission(decl.fhir_type, decl.data_class, op))


def _guarded(ctx: RequestContext, decl: ResourceType, resource_id: str) -> None:
    """Before a variant stored apart is changed, it is read and must be visible to the
    writer (psychotherapy notes: their author or a granted role; 404 otherwise), as
    for a read: a write can no more reach it than a read can. One GetItem."""
    if decl.variant is None:
        return
    try:
        _loaded(ctx, decl, service.read(ctx.caller, decl, resource_id))
    except Gone:  # a tombstone shows no author: deleted is not known, to anyone
        raise NotFound(Issue("not-found", f"{decl.fhir_type} is not known.",
                             [f"{decl.fhir_type}.id"])) from None  # fmt: skip


def by_id(ctx: RequestContext, decl: ResourceType, resource_id: str, op: Op) -> ResourceType:
    target = registry.for_id(decl, resource_id)
    admit(ctx, target, op, about_id=True)
    return target


def visible(ctx: RequestContext, decl: ResourceType, stored: Stored) -> Stored | None:
    """The after-load checks, then the role's view of the resource (None: hidden)."""
    if stored.resource is None:
        return stored
    check_loaded(ctx.principal, decl.fhir_type, decl.data_class, stored.resource)
    view = shown(ctx.principal, decl.fhir_type, decl.data_class, stored.resource)
    return None if view is None else replace(stored, resource=view)


def _loaded(ctx: RequestContext, decl: ResourceType, stored: Stored) -> Stored:
    """As `visible`, for a request about this resource: hidden is not found."""
    seen = visible(ctx, decl, stored)
    if seen is None:
        raise NotFound(Issue("not-found", f"{decl.fhir_type}/{stored.address.resource_id} "
                             "is not known.", [f"{decl.fhir_type}.id"]))  # fmt: skip
    return seen


About = tuple[str, str, str | None]


def _concerns(decl: ResourceType) -> Callable[[Request, dict[str, str]], About | None]:
    """The resource an id in the path names, and its patient."""

    def concerns(request: Request, params: dict[str, str]) -> About | None:
        rid = params["resource_id"]
        patient = rid if decl.is_patient else keys.patient_of(rid) if decl.compartment else None
        return registry.for_id(decl, rid).name, rid, patient

    return concerns


def _chart_concerns(decl: ResourceType) -> Callable[[Request, dict[str, str]], About | None]:
    """The patient whose chart a search names (`?patient=`), so that the search is in
    that patient's trail whatever its outcome (a refusal, no match)."""

    def concerns(request: Request, params: dict[str, str]) -> About | None:
        given = request.query_params
        if decl.compartment is None or not given:
            return None
        named = [(p, v) for p in decl.compartment.params if p in given for v in given.getlist(p)]
        charts = search.charts_named(decl, *named[0]) if len(named) == 1 else None
        return (decl.name, "", charts[0]) if charts is not None and len(charts) == 1 else None

    return concerns


def _criteria(text: str, where: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=50)
    except ValueError:
        raise Invalid(Issue("invalid", "Criteria must be a query string.", [where])) from None


def _seen(ctx: RequestContext, decl: ResourceType, result: Any) -> Any:
    """The page as the reader may see it. Hidden resources leave no trace: the
    audit record names only what was returned, and the total is given only when the
    page is the whole result (else it would count what was hidden)."""
    seen = [v for s in result.found if (v := visible(ctx, decl, s)) is not None]
    if len(seen) == len(result.found):
        return result
    patients = [s.address.patient_id for s in seen if s.address.patient_id]
    ctx.caller.returned(decl.name, len(seen), patients)
    whole = result.next_cursor is None and result.next_offset is None
    return replace(result, found=seen, total=len(seen) if whole and result.total is not None
                   else None)  # fmt: skip


def _search_bundle(
    ctx: RequestContext, decl: ResourceType, params: dict[str, list[str]], result: Any
) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"{ctx.base_url}/{_ref(s)}",
            "resource": s.resource,
            "search": {"mode": "match"},
        }
        for s in result.found
    ]
    paging = ("_cursor", "_offset")
    kept = [(k, v) for k, vs in sorted(params.items()) if k not in paging for v in vs]
    current = [(k, params[k][0]) for k in paging if k in params]
    t = decl.fhir_type
    links = {"self": link(ctx.base_url, t, [*kept, *current])}
    if result.next_cursor:
        links["next"] = link(ctx.base_url, t, [*kept, ("_cursor", result.next_cursor)])
    elif result.next_offset is not None:
        links["next"] = link(ctx.base_url, t, [*kept, ("_offset", str(result.next_offset))])
    out = bundle("searchset", entries, links)
    if result.total is not None:
        out = {**out, "total": result.total}
    return out


def _form_params(request: Request, decl: ResourceType) -> dict[str, list[str]]:
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    raw = request.raw_body or b""
    if raw and media != FORM:
        raise UnsupportedMediaType(
            Issue("not-supported", f"Send the criteria as {FORM}.", ["Content-Type"])
        )
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    body = _criteria(text, f"{decl.name}.search") if text else {}
    merged = _params(request)
    for name, values in body.items():
        merged.setdefault(name, []).extend(values)
    return merged


def _not_allowed(method: str, allow: str) -> MethodNotAllowed:
    return MethodNotAllowed(
        Issue("not-supported", f"{method} is not supported here; allowed: {allow}."),
        headers={"Allow": allow},
    )


def _named(fn: Callable[..., Response], name: str) -> Callable[..., Response]:
    fn.__name__ = fn.__qualname__ = name
    return fn


def add_routes(decl: ResourceType) -> None:  # noqa: C901  (one closure per interaction)
    t, dc, lower = decl.fhir_type, decl.data_class, decl.fhir_type.lower()
    base = f"/fhir/R4/{t}"
    concerns = _concerns(decl)

    def perm(op: Op) -> Permission:
        return Permission(t, dc, op)

    def create(ctx: RequestContext) -> Response:
        _check_accept(ctx.request)
        body = read_json_body(ctx.request)
        header = ctx.request.headers.get("if-none-exist")
        general = ("_format", "_pretty")  # apply to every interaction: not criteria
        in_url = {k: v for k, v in _params(ctx.request).items() if k not in general}
        criteria = _criteria(header, "If-None-Exist") if header else in_url
        target = registry.for_body(decl, body)
        admit(ctx, target, Op.CREATE, about_id=False)
        may_label = allowed(ctx.principal, Permission(t, target.data_class, Op.LABEL))
        done = service.create(ctx.caller, target, body, may_label, criteria or None)
        if not done.created:
            return _written(ctx, _loaded(ctx, target, done.stored), 200, location=False)
        return _written(ctx, done.stored, 201, location=True)

    def searched(ctx: RequestContext, params: dict[str, list[str]]) -> Response:
        target = registry.for_search(decl, params)
        admit(ctx, target, Op.SEARCH, about_id=False)
        result = service.search_resources(ctx.caller, target, params)
        return fhir_response(_search_bundle(ctx, target, params, _seen(ctx, target, result)))

    def search(ctx: RequestContext) -> Response:
        _check_accept(ctx.request)
        return searched(ctx, _params(ctx.request))

    def search_post(ctx: RequestContext) -> Response:
        _check_accept(ctx.request)
        return searched(ctx, _form_params(ctx.request, decl))

    def read(ctx: RequestContext, resource_id: str) -> Response:
        _check_accept(ctx.request)
        target = by_id(ctx, decl, resource_id, Op.READ)
        stored = _loaded(ctx, target, service.read(ctx.caller, target, resource_id))
        return fhir_response(stored.resource, 200, _headers(ctx, stored))

    def update(ctx: RequestContext, resource_id: str) -> Response:
        _check_accept(ctx.request)
        body = read_json_body(ctx.request)
        target = by_id(ctx, decl, resource_id, Op.UPDATE)
        _guarded(ctx, target, resource_id)
        may_label = allowed(ctx.principal, Permission(t, target.data_class, Op.LABEL))
        if_match = ctx.request.headers.get("if-match")
        stored = service.update(ctx.caller, target, resource_id, body, if_match, may_label)
        return _written(ctx, stored, 200, location=False)

    def delete(ctx: RequestContext, resource_id: str) -> Response:
        target = by_id(ctx, decl, resource_id, Op.DELETE)
        _guarded(ctx, target, resource_id)
        service.delete(ctx.caller, target, resource_id)
        return fhir_response(None, 204)

    def history(ctx: RequestContext, resource_id: str) -> Response:
        _check_accept(ctx.request)
        params = _params(ctx.request)
        count = service.search.parse_count(
            params.get("_count", [str(DEFAULT_COUNT)])[0], f"{t}.history"
        )
        if count == 0:
            raise Invalid(Issue("invalid", "_count must be 1 or more.", [f"{t}.history._count"]))
        before = service.parse_before_version(decl, params.get("_before_version", [None])[0])
        since = service.parse_since(decl, params.get("_since", [None])[0])
        kept = [("_count", str(count))] + ([("_since", since)] if since else [])
        target = by_id(ctx, decl, resource_id, Op.HISTORY)
        found, next_before = service.history(ctx.caller, target, resource_id, count, before,
                                             since)  # fmt: skip
        reference = f"{t}/{resource_id}"
        found = [_loaded(ctx, target, s) for s in found]
        items = [
            history_entry(ctx.base_url, reference, s.version, s.last_updated, s.resource)
            for s in found
        ]
        links = {"self": link(ctx.base_url, f"{reference}/_history", kept)}
        if next_before:
            links["next"] = link(
                ctx.base_url,
                f"{reference}/_history",
                [*kept, ("_before_version", str(next_before))],
            )
        out = bundle("history", items, links)
        return fhir_response({**out, "total": len(items)} if not next_before and before is None
                             else out)  # fmt: skip

    def vread(ctx: RequestContext, resource_id: str, version_id: str) -> Response:
        _check_accept(ctx.request)
        target = by_id(ctx, decl, resource_id, Op.HISTORY)
        stored = service.read_version(ctx.caller, target, resource_id, version_id)
        return fhir_response(_loaded(ctx, target, stored).resource, 200, _headers(ctx, stored))

    def add(path: str, methods: list[str], view: Callable[..., Response], op: Op,
            about: Any = concerns) -> None:  # fmt: skip
        name = f"{lower}_{view.__name__}"
        wrapped = fhir_view(_current, perm(op), about)(_named(view, name))
        bp.route(path, methods=methods, content_types=ANY, name=name)(wrapped)

    add(base, ["POST"], create, Op.CREATE, about=None)
    add(base, ["GET"], search, Op.SEARCH, about=_chart_concerns(decl))
    bp.route(f"{base}/_search", methods=["POST"], content_types=[FORM, *ANY],
             name=f"{lower}_search_post")(
        fhir_view(_current, perm(Op.SEARCH), None)(_named(search_post, f"{lower}_search_post"))
    )  # fmt: skip
    add(f"{base}/{{resource_id}}", ["GET"], read, Op.READ)
    add(f"{base}/{{resource_id}}", ["PUT"], update, Op.UPDATE)
    add(f"{base}/{{resource_id}}", ["DELETE"], delete, Op.DELETE)
    add(f"{base}/{{resource_id}}/_history", ["GET"], history, Op.HISTORY)
    # an old version is history, whatever its number
    add(f"{base}/{{resource_id}}/_history/{{version_id}}", ["GET"], vread, Op.HISTORY)
    _method_routes(decl, base)


def _method_routes(decl: ResourceType, base: str) -> None:
    lower = decl.fhir_type.lower()
    other = ["POST", "PUT", "DELETE", "PATCH"]
    table = [
        (base, ["PUT", "DELETE", "PATCH"], "GET, POST"),
        (f"{base}/_search", ["GET", "PUT", "DELETE", "PATCH"], "POST"),
        (f"{base}/{{resource_id}}", ["POST", "PATCH"], "GET, PUT, DELETE"),
        (f"{base}/{{resource_id}}/_history", other, "GET"),
        (f"{base}/{{resource_id}}/_history/{{version_id}}", other, "GET"),
    ]
    for i, (path, methods, allow) in enumerate(table):

        def refuse(request: Request, allow: str = allow, **_: str) -> Response:
            raise _not_allowed(request.method, allow)

        name = f"{lower}_not_allowed_{i}"
        bp.route(path, methods=methods, content_types=ANY, name=name)(
            public_view(_current)(_named(refuse, name))
        )


for _declaration in registry.fhir_types():
    add_routes(_declaration)
