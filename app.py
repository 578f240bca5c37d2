"""Chalice entry point: the REST API (one Blueprint per workflow) and the
table-stream consumer. Everything else lives in functions/, models/, events/."""

from __future__ import annotations

import os
from typing import Any

from chalice import Chalice

from functions.admin.routes import bp as admin_routes
from functions.alerts.routes import bp as alert_routes
from functions.audit.routes import bp as audit_routes
from functions.billing.routes import bp as billing_routes
from functions.charts.routes import bp as chart_routes
from functions.engine.routes import bp as resource_routes
from functions.fhir.routes import bp as fhir_routes
from functions.measures.routes import bp as measure_routes
from functions.medications.routes import bp as medication_routes
from functions.notes.routes import bp as note_routes
from functions.plans.routes import bp as plan_routes

app = Chalice(app_name="emr")
app.api.binary_types = []  # bodies are JSON text; never base64-wrapped by API Gateway
app.register_blueprint(fhir_routes)
app.register_blueprint(resource_routes)
app.register_blueprint(audit_routes)
# Workflows: their operations ($sign, $chart, ...) beside the engine's FHIR routes.
app.register_blueprint(note_routes)
app.register_blueprint(measure_routes)
app.register_blueprint(medication_routes)
app.register_blueprint(plan_routes)
app.register_blueprint(chart_routes)
app.register_blueprint(admin_routes)
# The pipelines' own routes (billing, worklist) register below this line.
app.register_blueprint(alert_routes)
app.register_blueprint(billing_routes)

# Chalice needs a literal ARN here; `chalice package` output gets the real one
# from infra/template.json (Fn::GetAtt EmrTable.StreamArn), the local runner
# calls the handler directly.
STREAM_ARN = os.environ.get(
    "EMR_STREAM_ARN", "arn:aws:dynamodb:us-east-1:123456789012:table/emr/stream/set-by-infra"
)


@app.on_dynamodb_record(
    stream_arn=STREAM_ARN,
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    name="stream_publisher",
    maximum_batching_window_in_seconds=1,
)
def stream_publisher(event: Any) -> dict[str, Any]:
    from events.stream import handle_batch

    return handle_batch(event.to_dict())


# --- The event pipelines' functions (docs/pipelines.md) ------------------------------
# Each imports its workflow lazily, so the API function's cold start never pays for them.
# Chalice needs literal queue ARNs; `chalice package` output gets the real ones from
# infra/template.json (Fn::GetAtt), the local runner calls the handlers directly.
_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:{}-set-by-infra"


@app.on_sqs_message(
    queue_arn=os.environ.get("EMR_BILLING_QUEUE_ARN", _QUEUE_ARN.format("billing")),
    batch_size=10,
    name="billing_consumer",
)
def billing_consumer(event: Any) -> dict[str, Any]:
    from functions.billing.consumers import consumer

    return consumer.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(
    queue_arn=os.environ.get("EMR_AUDIT_QUEUE_ARN", _QUEUE_ARN.format("audit")),
    batch_size=10,
    name="audit_consumer",
)
def audit_consumer(event: Any) -> dict[str, Any]:
    from functions.audit.consumers import consumer

    return consumer.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(
    queue_arn=os.environ.get("EMR_ALERTS_QUEUE_ARN", _QUEUE_ARN.format("alerts")),
    batch_size=10,
    name="alerts_consumer",
)
def alerts_consumer(event: Any) -> dict[str, Any]:
    from functions.alerts.consumers import consumer

    return consumer.handle_batch(event.to_dict(), event.context)


@app.schedule("rate(5 minutes)", name="alerts_escalation")
def alerts_escalation(event: Any) -> dict[str, Any]:
    from functions.alerts.escalation import run

    return {"escalated": run()}


@app.schedule("cron(15 0 * * ? *)", name="ledger_archive")
def ledger_archive(event: Any) -> dict[str, Any]:
    from functions.audit.archive import run

    return {"archived": run()}
