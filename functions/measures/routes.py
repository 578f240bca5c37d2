"""Routes of the measures workflow (its operations beside the engine's FHIR routes).

    GET  /fhir/R4/Questionnaire[?url=...]              the three instruments (searchset)
    GET  /fhir/R4/Questionnaire/{id}                   phq-9, gad-7, c-ssrs-screener
    POST /fhir/R4/Flag/{id}/$resolve                   inactivate a safety flag with a note
    GET  /fhir/R4/Patient/{id}/$trend?instrument=key   baseline, latest, response, remission

Responses are submitted on the engine's `POST /fhir/R4/QuestionnaireResponse`; their
scoring is the declaration's (functions/measures/declarations.py).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request, Response

from functions.common.authz import Op, Permission
from functions.common.bundle import bundle, link
from functions.common.errors import Invalid, Issue, NotFound
from functions.common.http import RequestContext, fhir_response, fhir_view, read_json_body
from functions.measures import instruments, service
from models import keys

bp = Blueprint(__name__)
ANY = ["*/*"]


QUESTIONNAIRE_READ = Permission("Questionnaire", "catalog", Op.READ)
TREND = Permission("Observation", "phi", Op.SEARCH)
RESOLVE = Permission("Flag", "phi", Op.UPDATE)
GENERAL = ("_format", "_pretty", "_count", "_summary")
PUBLISHED = ("url", "_id")


def _current() -> Any:
    return bp.current_request


def _flag_concerns(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    rid = params["resource_id"]
    return "Flag", rid, keys.patient_of(rid)


def _patient_concerns(request: Request, params: dict[str, str]) -> tuple[str, str, str | None]:
    return "Observation", "", params["resource_id"]


def _published(params: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The Questionnaires matching `url` (canonical, optionally |version) and `_id`."""
    unsupported = sorted(set(params) - set(PUBLISHED) - set(GENERAL))
    if unsupported:
        raise Invalid(Issue("not-supported", f"Questionnaire searches take only: "
                            f"{', '.join(PUBLISHED)}.", ["Questionnaire.search"]))  # fmt: skip
    found = list(instruments.INSTRUMENTS)
    for url in params.get("url", []):
        found = [i for i in found if i is instruments.questionnaire(url)]
    for ids in params.get("_id", []):
        found = [i for i in found if i.key in ids.split(",")]
    return [i.questionnaire for i in found]


@bp.route("/fhir/R4/Questionnaire", methods=["GET"], content_types=ANY)
@fhir_view(_current, QUESTIONNAIRE_READ)
def questionnaire_search(ctx: RequestContext) -> Response:
    raw = ctx.request.query_params
    params = {k: list(raw.getlist(k)) for k in raw} if raw else {}
    found = _published(params)
    entries = [
        {"fullUrl": f"{ctx.base_url}/Questionnaire/{q['id']}", "resource": q,
         "search": {"mode": "match"}}
        for q in found
    ]  # fmt: skip
    kept = [(k, v) for k in PUBLISHED for v in params.get(k, [])]
    out = bundle("searchset", entries, {"self": link(ctx.base_url, "Questionnaire", kept)})
    return fhir_response({**out, "total": len(entries)})


@bp.route("/fhir/R4/Questionnaire/{resource_id}", methods=["GET"], content_types=ANY)
@fhir_view(_current, QUESTIONNAIRE_READ)
def questionnaire_read(ctx: RequestContext, resource_id: str) -> Response:
    found = instruments.by_key(resource_id)
    if found is None:
        raise NotFound(
            Issue(
                "not-found",
                "Questionnaire is not known; the instruments are phq-9, gad-7 and c-ssrs-screener.",
                ["Questionnaire.id"],
            )
        )
    return fhir_response(found.questionnaire, 200, {"ETag": 'W/"1"'})  # fmt: skip


@bp.route("/fhir/R4/Flag/{resource_id}/$resolve", methods=["POST"], content_types=ANY)
@fhir_view(_current, RESOLVE, _flag_concerns)
def flag_resolve(ctx: RequestContext, resource_id: str) -> Response:
    note_id, reason = service.parse_resolution(read_json_body(ctx.request))
    stored = service.resolve_flag(ctx.caller, resource_id, note_id, reason)
    return fhir_response(stored.resource, 200, {"ETag": f'W/"{stored.version}"'})


@bp.route("/fhir/R4/Patient/{resource_id}/$trend", methods=["GET"], content_types=ANY)
@fhir_view(_current, TREND, _patient_concerns)
def patient_trend(ctx: RequestContext, resource_id: str) -> Response:
    raw = ctx.request.query_params
    instrument = service.trend_instrument(list(raw.getlist("instrument")) if raw else [])
    return fhir_response(service.patient_trend(ctx.caller, resource_id, instrument))
