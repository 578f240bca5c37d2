"""Use cases of measurement-based care: scoring a submitted response in its own
transaction, resolving a safety flag with a signed note, and a patient's trend.

`stage_scoring` is the QuestionnaireResponse's `companions` hook: the engine calls
it while it stages the response's create, so the response, its score Observation,
the chart's score ring entry (and, the first time, the baseline entry), the safety
Flag and the events are one TransactWriteItems. A ring slot taken by a concurrent
submission fails that transaction as `counter`; the engine then runs the whole
write again, this hook included (it reads the counter afresh).
"""

from __future__ import annotations

from typing import Any

from functions.common.caller import Caller
from functions.common.errors import Conflict, Invalid, Issue
from functions.engine import service
from functions.engine.registry import Change
from functions.engine.types import OBSERVATION
from functions.measures import instruments, scoring, trends
from functions.measures.declarations import FLAG, RESOLVE
from models import chart
from models.chart import Ring
from models.clock import iso, now
from models.resources import Stored
from models.uow import UnitOfWork

ROOT = "QuestionnaireResponse"
RING_SIZE = 12
BASELINE = "base"  # chart key suffix of an instrument's first score: `2#<key>#base`


def score_ring(key: str) -> Ring:
    """The chart ring of an instrument's last 12 scores (docs/adr/0008)."""
    return Ring(f"scores.{key}", f"2#{key}", RING_SIZE)


def baseline_key(key: str) -> str:
    """The chart key of an instrument's first score, kept when the ring wraps."""
    return f"{score_ring(key).section}#{BASELINE}"


# ----------------------------------------------------------------- declaration hooks


def response_rules(body: dict[str, Any]) -> list[Issue]:
    """A response must name one of our Questionnaires and answer it validly."""
    url = body.get("questionnaire")
    instrument = instruments.questionnaire(url) if isinstance(url, str) else None
    if instrument is None:
        known = ", ".join(i.url for i in instruments.INSTRUMENTS)
        return [
            Issue("value", f"questionnaire must be one of: {known}.", [f"{ROOT}.questionnaire"])
        ]
    return scoring.validate(instrument, body)


def refuse_response_change(stored: Stored | None, body: dict[str, Any] | None) -> None:
    """A submitted response is final: an update is a 409 (deletes are the policy's)."""
    if stored is not None and body is not None:
        raise Conflict(
            Issue("business-rule", "A submitted QuestionnaireResponse is final: submit a new "
                  "response to correct it.", [ROOT])
        )  # fmt: skip


def _summary(observation: Stored, scored: scoring.Scored) -> dict[str, Any]:
    body = observation.resource or {}
    return {
        "resourceType": "Observation",
        "id": observation.address.resource_id,
        "instrument": scored.instrument,
        "date": body.get("effectiveDateTime"),
        "total": scored.total,
        "band": {"code": scored.band.code, "display": scored.band.display},
        "safety": scored.safety.reason if scored.safety is not None else None,
    }


def stage_scoring(into: UnitOfWork, caller: Caller, stored: Stored, change: Change) -> None:
    """On a response's create: stage its score Observation, ring entry (and baseline),
    safety Flag and events in the response's own transaction (one BatchGetItem first:
    the ring counter)."""
    response, a = stored.resource, stored.address
    if change is not Change.CREATED or response is None or a.patient_id is None:
        return
    uow = into  # one transaction with the response (it checks the patient once)
    instrument = instruments.questionnaire(str(response.get("questionnaire")))
    assert instrument is not None  # the declaration's rules refused any other
    scored = scoring.score(instrument, response, response["subject"], a.reference)
    ring = score_ring(instrument.key)
    n = chart.read_counters(a.tenant, a.patient_id, [ring])[ring.name]
    observation = service.stage_create(uow, caller, OBSERVATION, scored.observation)
    summary = _summary(observation, scored)
    data_class = OBSERVATION.data_class
    chart.stage_ring_entry(uow, a.tenant, a.patient_id, ring, n, data_class, summary)
    if n == 0:  # the first score ever: the baseline outlives the ring's 12 slots
        chart.stage_entry(uow, a.tenant, a.patient_id, baseline_key(instrument.key), data_class,
                          summary, seq=0)  # fmt: skip
    _stage_events(uow, caller, stored, observation, scored)


def _stage_events(
    uow: UnitOfWork, caller: Caller, response: Stored, observation: Stored, scored: scoring.Scored
) -> None:
    from events import outbox
    from events.measures import SafetyRiskIdentified, ScoreRecorded

    a = response.address
    assert a.patient_id is not None
    ids: dict[str, Any] = {
        "tenant": a.tenant,
        "actor": caller.actor,
        "request_id": caller.request_id,
        "patient_id": a.patient_id,
        "response_id": a.resource_id,
        "observation_id": observation.address.resource_id,
        "instrument": scored.instrument,
    }
    outbox.stage(uow, ScoreRecorded(**ids))
    if scored.safety is not None:
        flag = service.stage_create(uow, caller, FLAG, scored.safety.flag)
        event = SafetyRiskIdentified(
            **ids, flag_id=flag.address.resource_id, reason=scored.safety.reason
        )
        outbox.stage(uow, event)


# ----------------------------------------------------------------- $resolve


NOTE_WHERE = "Parameters.parameter.where(name='note')"
REASON_WHERE = "Parameters.parameter.where(name='reason')"
RESOLUTION_URL = "https://emr.example/fhir/StructureDefinition/flag-resolution"
MAX_REASON = 1000


def _named(parameters: list[Any], name: str) -> list[dict[str, Any]]:
    return [p for p in parameters if isinstance(p, dict) and p.get("name") == name]


def parse_resolution(body: dict[str, Any]) -> tuple[str, str | None]:
    """The note id and the reason of a `$resolve` Parameters body (400 naming the
    parameter otherwise)."""
    parameters = body.get("parameter")
    if body.get("resourceType") != "Parameters" or not isinstance(parameters, list):
        raise Invalid(Issue("structure", "The body must be a Parameters resource with a "
                            "parameter list.", ["Parameters"]))  # fmt: skip
    unknown = [p for p in parameters if not isinstance(p, dict) or p.get("name") not in
               ("note", "reason")]  # fmt: skip
    if unknown:
        raise Invalid(Issue("structure", "Only the parameters note and reason are accepted.",
                            ["Parameters.parameter"]))  # fmt: skip
    return _note_id(_named(parameters, "note")), _reason(_named(parameters, "reason"))


def _note_id(found: list[dict[str, Any]]) -> str:
    ref = found[0].get("valueReference") if len(found) == 1 else None
    text = ref.get("reference") if isinstance(ref, dict) else None
    kind, _, note_id = text.partition("/") if isinstance(text, str) else ("", "", "")
    if kind != "DocumentReference" or not note_id or set(found[0]) != {"name", "valueReference"}:
        raise Invalid(Issue("required", "note must be one valueReference to the signed "
                            "DocumentReference/<id> documenting the assessment.",
                            [NOTE_WHERE]))  # fmt: skip
    return note_id


def _reason(found: list[dict[str, Any]]) -> str | None:
    from functions.engine.validation import FORBIDDEN_CHARACTERS

    if not found:
        return None
    value = found[0].get("valueString") if len(found) == 1 else None
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_REASON
        or FORBIDDEN_CHARACTERS.search(value)
        or set(found[0]) != {"name", "valueString"}
    ):
        raise Invalid(
            Issue(
                "value",
                f"reason is at most one valueString of 1 to {MAX_REASON} "
                "characters, without control characters.",
                [REASON_WHERE],
            )
        )
    return value  # fmt: skip


def _check_signed_note(caller: Caller, note_id: str, patient_id: str | None) -> None:
    """The note must be a signed clinical note of the flag's patient (one GetItem).
    Psychotherapy notes are never named here: their ids do not address a note."""
    from functions.engine import registry
    from functions.notes.documents import signed
    from models import resources

    decl = registry.require("DocumentReference")
    a = service.address_of(caller.tenant, decl, note_id)
    note = resources.read_current(a) if a is not None and a.patient_id == patient_id else None
    body = note.resource if note is not None else None
    if body is None or not signed(body):
        raise Invalid(Issue("value", "note must name a signed (final or amended) note of "
                            "the flag's patient.", [NOTE_WHERE]))  # fmt: skip


def _resolver(caller: Caller) -> dict[str, Any]:
    from functions.engine.directory import USER_SYSTEM, practitioner_for

    found = practitioner_for(caller)
    if found is not None:
        return {"reference": found.address.reference}
    return {"identifier": {"system": USER_SYSTEM, "value": caller.principal.username}}


def _resolved(current: Stored, note_id: str, reason: str | None, by: dict[str, Any]) -> Any:
    body = dict(current.resource or {})
    parts: list[dict[str, Any]] = [
        {"url": "note", "valueReference": {"reference": f"DocumentReference/{note_id}"}},
        {"url": "resolver", "valueReference": by},
    ]
    if reason is not None:
        parts.append({"url": "reason", "valueString": reason})
    body["status"] = RESOLVE.to
    body["period"] = {**(body.get("period") or {}), "end": iso(now())}
    body["extension"] = [*(body.get("extension") or []), {"url": RESOLUTION_URL,
                                                          "extension": parts}]  # fmt: skip
    return body


def resolve_flag(caller: Caller, flag_id: str, note_id: str, reason: str | None) -> Stored:
    """Make an active flag inactive, naming the signed note and the resolver: one
    transaction (the flag's next version, its chart entry removed, its event, the
    audit record). 409 when the flag is not active (or changed meanwhile)."""
    current = service.read_for_change(caller, FLAG, flag_id)
    status = (current.resource or {}).get("status")
    if status != "active":
        raise Conflict(Issue("business-rule", f"$resolve needs an active Flag; this one is "
                             f"{status}.", ["Flag.status"]))  # fmt: skip
    _check_signed_note(caller, note_id, current.address.patient_id)
    body = _resolved(current, note_id, reason, _resolver(caller))
    uow = UnitOfWork()
    stored = service.stage_replace(uow, caller, FLAG, current, body, step=RESOLVE)
    service.commit(caller, FLAG, uow, 200)
    return stored


# ----------------------------------------------------------------- $trend


def trend_instrument(values: list[str]) -> instruments.Instrument:
    """The `instrument` search parameter: one key of an instrument with a total."""
    found = instruments.by_key(values[0]) if len(values) == 1 else None
    if found is None or found.key not in trends.REMISSION_BELOW:
        keys = ", ".join(trends.REMISSION_BELOW)
        raise Invalid(Issue("value", f"instrument must be one of: {keys}.",
                            ["Patient.$trend.instrument"]))  # fmt: skip
    return found


def _points(entries: list[chart.SealedEntry], key: str) -> list[dict[str, Any]]:
    """The baseline first (when the ring no longer holds it), then the ring's
    scores in the order they were recorded."""
    section = score_ring(key).section + "#"
    base = [e for e in entries if e.key == baseline_key(key)]
    ring = sorted((e for e in entries if e.key.startswith(section) and e not in base),
                  key=lambda e: e.seq or 0)  # fmt: skip
    if any(e.seq == 0 for e in ring):
        base = []
    return [e.open() for e in base + ring]


def patient_trend(caller: Caller, patient_id: str, instrument: instruments.Instrument) -> Any:
    """The patient's totals of one instrument from the chart (its one bounded Query),
    summarised as a FHIR Parameters (functions/measures/trends.py)."""
    caller.touched("Observation", "", patient_id)
    scores = _points(chart.read(caller.tenant, patient_id).entries, instrument.key)
    caller.returned("Observation", len(scores), [patient_id] if scores else [])
    return trends.as_parameters(instrument.key, scores)
