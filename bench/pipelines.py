"""Pipeline figures: about 1,000 clinical events through the local pipelines (stream
publisher -> EventBridge -> SQS -> billing, audit and alerts consumers), with 10 % of
the events hit by an injected fault, then what arrived where.

The workload goes through the API: visits (an Encounter finished, its note signed;
every other visit signs the note *before* the encounter is finished, so billing sees
`note.signed` before `encounter.finished`), a risky PHQ-9 every tenth visit, and reads
of one patient's chart (their `phi.accessed` events fill the ledger query below).

Faults, chosen per event by a hash of its id (2 % each, 10 % in all), plus poison:

- `stream-duplicate`: its stream record is delivered to the publisher a second time;
- `putevents-failure`: EventBridge reports its entry failed on the first attempt;
- `sqs-duplicate`: its message is delivered twice by SQS (a copy is sent);
- `consumer-raises`: each consumer's handler raises on its first delivery;
- `crash-after-effect`: each consumer's handler does its work, then the invocation dies
  before the message is acknowledged (the effect must not happen twice);
- poison: 5 malformed or unknown-version messages per queue, which must end in the DLQs.

Measured: `events_lost` (events written to the outbox or audited, minus those the
ledger holds), `duplicate_charges` (charge lines beyond one per CPT code per encounter),
`charges_missing`, `ledger_verifies`, `putevents_calls_per_event`, and
`audit_query_round_trips` (DynamoDB operations of one patient's last 100 ledger entries
through `GET /audit/AuditEvent`, the request's own audit write left out).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench import counts
from bench.api import BASE, HttpApi, patient_body
from bench.charting import SIGNER, _ok, _staff, phq9
from bench.report import Figure, at_most, exactly
from bench.stack import HOST, TENANT, BenchStack

VISITS = 80
FOCUS_READS = 110  # reads of one patient: more than the 100 entries queried
PATIENTS = 8
POISON_PER_QUEUE = 5
FAULTS = ("stream-duplicate", "putevents-failure", "sqs-duplicate", "consumer-raises",
          "crash-after-effect")  # fmt: skip
QUEUES = {"billing": "billing_consumer", "audit": "audit_consumer", "alerts": "alerts_consumer"}
SERVICE = "https://emr.example/fhir/CodeSystem/service-type"
MINUTES = "https://emr.example/fhir/StructureDefinition/psychotherapy-minutes"
SETTLE_S = 900
STREAM_BATCH = 1000  # the event source mapping's BatchSize (infra/template.json)


def fault_of(event_id: str) -> str | None:
    """2 % of events per kind of fault, 10 % in all, the same on every run."""
    bucket = int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % 100
    return FAULTS[bucket // 2] if bucket < 2 * len(FAULTS) else None


def _event_of_image(image: dict[str, Any]) -> tuple[str, str] | None:
    """(tenant, event id) of an outbox or audit item's stream image."""
    kind = (image.get("type") or {}).get("S")
    field = {"outbox": "event_id", "audit": "audit_id", "audit-search": "audit_id"}.get(kind or "")
    if field is None:
        return None
    return (image.get("tenant") or {}).get("S", ""), (image.get(field) or {}).get("S", "")


class Injector:
    """Wraps the stream publisher, PutEvents and the consumers with the faults above,
    and keeps what it saw."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.produced: set[tuple[str, str]] = set()  # (tenant, event id)
        self.injected: Counter[str] = Counter()
        self._first: set[tuple[str, str]] = set()  # (fault, event id) already applied
        self._lock = threading.Lock()

    def _once(self, fault: str, event_id: str) -> bool:
        with self._lock:
            if (fault, event_id) in self._first:
                return False
            self._first.add((fault, event_id))
            self.injected[fault] += 1
            return True

    # --- the stream publisher --------------------------------------------------------

    def stream_handler(self, event: dict[str, Any]) -> dict[str, Any]:
        records = event.get("Records") or []
        dupes = []
        for record in records:
            image = (record.get("dynamodb") or {}).get("NewImage") or {}
            seen = _event_of_image(image)
            if seen is None:
                continue
            self.produced.add(seen)
            event_id = seen[1]
            if fault_of(event_id) == "stream-duplicate" and self._once("stream-duplicate",
                                                                         event_id):  # fmt: skip
                dupes.append(record)
        # the duplicates arrive in the same batch, after the records they repeat
        batch = {"Records": [*records, *dupes]} if dupes else event
        result: dict[str, Any] = self.stack.app_module.stream_publisher(batch, None)
        return result

    def put_events(self, real: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Any:
        def put(entries: list[dict[str, Any]]) -> dict[str, Any]:
            fail = []
            for i, entry in enumerate(entries):
                event_id = json.loads(entry["Detail"]).get("event_id", "")
                if fault_of(event_id) == "putevents-failure" and self._once(
                    "putevents-failure", event_id
                ):
                    fail.append(i)
            keep = [e for i, e in enumerate(entries) if i not in fail]
            answer: dict[str, Any] = real(keep) if keep else {}
            results = iter(list(answer.get("Entries") or []))
            merged = [
                {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}
                if i in fail else next(results)
                for i in range(len(entries))
            ]  # fmt: skip
            failed = sum(1 for r in merged if r.get("ErrorCode"))
            return {"FailedEntryCount": failed, "Entries": merged}

        return put

    # --- the consumers ---------------------------------------------------------------

    def wrap_consumer(self, consumer: Any) -> None:
        for name, handler in list(consumer.handlers.items()):
            consumer.handlers[name] = self._faulty(consumer.name, handler)

    def _faulty(self, consumer: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(received: Any) -> None:
            fault = fault_of(received.event_id)
            if fault == "consumer-raises" and self._once(f"{consumer}:raise", received.event_id):
                raise RuntimeError("injected: the consumer raised")
            handler(received)
            if fault == "crash-after-effect" and self._once(f"{consumer}:crash",
                                                             received.event_id):  # fmt: skip
                raise RuntimeError("injected: the invocation died after its effect")

        return run

    def sqs_handler(self, sqs: Any, url: str, function: Callable[..., Any]) -> Any:
        def handle(event: dict[str, Any], context: Any) -> Any:
            for record in event.get("Records") or []:
                try:
                    event_id = json.loads(record["body"])["detail"]["event_id"]
                except (ValueError, KeyError, TypeError):
                    continue
                if fault_of(event_id) == "sqs-duplicate" and self._once(
                    f"sqs-duplicate:{url}", event_id
                ):
                    sqs.send_message(QueueUrl=url, MessageBody=record["body"])
            return function(event, context)

        return handle


def _encounter(patient: str, author: str, status: str, minutes: int) -> dict[str, Any]:
    period = {"start": "2026-03-02T10:00:00Z"}
    if status == "finished":
        period["end"] = "2026-03-02T11:00:00Z"
    return {
        "resourceType": "Encounter", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "serviceType": {"coding": [{"system": SERVICE, "code": "psychotherapy-individual"}]},
        "participant": [{"individual": {"reference": f"Practitioner/{author}"}}],
        "period": period,
        "extension": [{"url": MINUTES, "valueInteger": minutes}],
    }  # fmt: skip


def _note(patient: str, author: str, encounter: str) -> dict[str, Any]:
    text = base64.b64encode(b"Session note: reviewed coping plan; practised skills.").decode()
    return {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "author": [{"reference": f"Practitioner/{author}"}],
        "context": {"encounter": [{"reference": f"Encounter/{encounter}"}]},
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": text}}],
    }  # fmt: skip


def _visit(api: HttpApi, patient: str, author: str, i: int) -> str:
    """One visit; odd visits sign the note before the encounter is finished."""
    minutes = (20, 45, 60)[i % 3]
    early = i % 2 == 1
    status = "in-progress" if early else "finished"
    enc = _ok(api.call("POST", f"{BASE}/Encounter", _encounter(patient, author, status, minutes)),
              "encounter")  # fmt: skip
    note = _ok(api.call("POST", f"{BASE}/DocumentReference", _note(patient, author, enc["id"])),
               "note")  # fmt: skip
    _ok(api.call("POST", f"{BASE}/DocumentReference/{note['id']}/$sign", {}), "sign")
    if early:
        done = {**enc, **_encounter(patient, author, "finished", minutes), "id": enc["id"]}
        _ok(api.call("PUT", f"{BASE}/Encounter/{enc['id']}", done), "finish")
    return str(enc["id"])


def _queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def _poison(sqs: Any, url: str) -> int:
    bodies = ["{not json", json.dumps({"detail-type": "note.signed.v9", "source": "emr.notes",
                                       "id": "x", "detail": {}})]  # fmt: skip
    for n in range(POISON_PER_QUEUE):
        sqs.send_message(QueueUrl=url, MessageBody=bodies[n % 2])
    return POISON_PER_QUEUE


def run(stack: BenchStack, say: Callable[[str], None]) -> dict[str, Any]:
    import boto3

    import events.putevents as putevents
    from devstack.dlq import CONSUMERS, queue_url
    from devstack.queues import QueueRunner
    from devstack.runner import StreamRunner
    from functions.audit.verify import verify
    from models import ledger

    sqs = boto3.client("sqs")
    urls = {name: queue_url(sqs, CONSUMERS[name][0]) for name in QUEUES}
    dlqs = {name: queue_url(sqs, CONSUMERS[name][1]) for name in QUEUES}
    for url in [*urls.values(), *dlqs.values()]:
        sqs.purge_queue(QueueUrl=url)  # what earlier phases left is not this phase's
    inject = Injector(stack)
    streams = StreamRunner(boto3.client("dynamodbstreams"), stack.local.stream_arn,
                           inject.stream_handler, batch_size=STREAM_BATCH)  # fmt: skip
    streams.skip_to_latest()
    staff = _staff()
    author = staff[SIGNER]
    api = HttpApi(HOST, stack.api_port, stack.token_for(SIGNER))
    biller = HttpApi(HOST, stack.api_port, stack.token_for("biller"))
    compliance = HttpApi(HOST, stack.api_port, stack.token_for("compliance"))
    try:
        say(f"Pipelines: {VISITS} visits, {VISITS // 10} risky PHQ-9s and {FOCUS_READS} chart "
            f"reads through the API ...")  # fmt: skip
        patients = [_ok(api.call("POST", f"{BASE}/Patient", patient_body(910000 + n)), "patient")
                    ["id"] for n in range(PATIENTS)]  # fmt: skip
        encounters = [_visit(api, patients[i % PATIENTS], author, i) for i in range(VISITS)]
        for i in range(0, VISITS, 10):
            _ok(api.call("POST", f"{BASE}/QuestionnaireResponse",
                         phq9(patients[i % PATIENTS], item9=1)), "phq-9")  # fmt: skip
        focus = patients[0]
        for _ in range(FOCUS_READS):
            _ok(api.call("GET", f"{BASE}/Patient/{focus}"), "read")
        ops_before = stack.ops()
        real_put = putevents._default_put
        putevents._default_put = inject.put_events(real_put)
        started = time.perf_counter()
        try:
            streams.drain()
            while streams.poll_once():
                pass
        finally:
            putevents._default_put = real_put
        publish_ops = counts.delta(ops_before, stack.ops())
        poison = {name: _poison(sqs, url) for name, url in urls.items()}
        runners = []
        for name, function in QUEUES.items():
            inject.wrap_consumer(_consumer(name))
            arn = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]  # fmt: skip
            handler = inject.sqs_handler(sqs, urls[name], getattr(stack.app_module, function))
            runners.append(QueueRunner(sqs, urls[name], arn, handler, retry_delay_s=1,
                                       function_name=function))  # fmt: skip
        say(f"Pipelines: {len(inject.produced)} events published; consuming with faults ...")
        threads = [threading.Thread(target=_settle, args=(sqs, r)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        settle_s = time.perf_counter() - started
        say("Pipelines: counting what arrived ...")
        lost = sorted(e for t, e in inject.produced if ledger.appended_seq(t, e) is None)
        charges = [_charge_codes(biller, enc) for enc in encounters]
        duplicate = sum(sum(c - 1 for c in codes.values() if c > 1) for codes in charges)
        missing = sum(1 for codes in charges if not codes)
        report = verify(TENANT)
        dead = {name: _queue_depth(sqs, url) for name, url in dlqs.items()}
        reply, audit_ops = counts.measured(
            stack, lambda: compliance.call("GET", f"/audit/AuditEvent?patient={focus}&_count=100")
        )
        entries = len(_ok(reply, "audit query").get("entry") or [])
    finally:
        for one in (api, biller, compliance):
            one.close()
    produced = len(inject.produced)
    return {
        "events": produced,
        "events_lost": len(lost),
        "lost_sample": lost[:5],
        "duplicate_charges": duplicate,
        "charges_missing": missing,
        "encounters": len(encounters),
        "ledger_verifies": report.verified,
        "ledger_entries": report.entries,
        "putevents_calls": publish_ops.get("events.PutEvents", 0),
        "putevents_calls_per_event": round(publish_ops.get("events.PutEvents", 0) / produced, 3)
        if produced
        else None,
        "faults_injected": dict(inject.injected),
        "poison_sent": sum(poison.values()),
        "dead_letters": dead,
        "audit_query_round_trips": counts.without_audit_write(audit_ops),
        "audit_query_entries": entries,
        "settle_s": round(settle_s, 1),
    }


def _settle(sqs: Any, runner: Any) -> None:
    """One consumer's queue until it is empty (messages in flight included), as its
    own Lambda would drain it beside the others."""
    deadline = time.perf_counter() + SETTLE_S
    while time.perf_counter() < deadline:
        if not runner.poll_once():
            if not _queue_depth(sqs, runner.queue_url):
                return
            time.sleep(0.5)


def _consumer(name: str) -> Any:
    if name == "billing":
        from functions.billing.consumers import consumer
    elif name == "audit":
        from functions.audit.consumers import consumer
    else:
        from functions.alerts.consumers import consumer
    return consumer


def _charge_codes(biller: HttpApi, encounter: str) -> Counter[str]:
    """CPT codes of the encounter's charge lines, counted."""
    found = _ok(biller.call("GET", f"{BASE}/ChargeItem?context=Encounter/{encounter}&_count=50"),
                "charges")  # fmt: skip
    return Counter(
        coding.get("code")
        for entry in found.get("entry") or []
        for coding in (entry["resource"].get("code") or {}).get("coding") or []
    )


def notes(p: dict[str, Any]) -> list[str]:
    out = [f"pipelines: {p['events']} events; faults injected {p['faults_injected']}; "
           f"{p['poison_sent']} poison messages; dead letters per queue {p['dead_letters']}; "
           f"settled in {p['settle_s']} s"]  # fmt: skip
    if p["lost_sample"]:
        out.append(f"pipelines: events not in the ledger, e.g. {p['lost_sample']}")
    if p["charges_missing"]:
        out.append(f"pipelines: {p['charges_missing']} of {p['encounters']} encounters uncharged")
    return out


def figures(p: dict[str, Any]) -> list[Figure]:
    return [
        Figure("events_lost", f"events lost ({p['events']} events, 10 % faults)",
               p["events_lost"], "0", exactly(0)),
        Figure("duplicate_charges", "charge lines beyond one per code per encounter",
               p["duplicate_charges"], "0", exactly(0)),
        Figure("charges_missing", "finished, signed encounters without a charge",
               p["charges_missing"], "0", exactly(0)),
        Figure("ledger_verifies", "audit ledger verifies (1 = true)", int(p["ledger_verifies"]),
               "1", exactly(1)),
        Figure("putevents_calls_per_event", "PutEvents calls per event (retries included)",
               p["putevents_calls_per_event"], "<= 0.11", at_most(0.11), "{:.3f}"),
        Figure("audit_query_round_trips", "one patient's last 100 ledger entries (less audit)",
               p["audit_query_round_trips"], "1", exactly(1)),
    ]  # fmt: skip
