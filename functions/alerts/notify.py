"""The SNS side of safety alerts: one topic per tenant, messages without PHI.

The topic of tenant `t` is `<EMR_ALERTS_TOPIC_PREFIX><t>` (default prefix
`emr-alerts-`), created on first use (CreateTopic is idempotent and is always sent
with the same attributes), encrypted with EMR_MESSAGING_KEY_ID when that is set.
Subscribers (a pager, an e-mail or SMS gateway, a queue) get ids, codes and links
only: the link leads to the record, where the reader signs in and is authorized
and audited like any other request. SNS delivers at least once: a subscriber may
see a message twice and should key on `alert` and `kind`.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from models.alerts import Alert
from models.aws import client

PREFIX_ENV, DEFAULT_PREFIX = "EMR_ALERTS_TOPIC_PREFIX", "emr-alerts-"
KEY_ENV = "EMR_MESSAGING_KEY_ID"
RAISED_KIND, ESCALATED_KIND = "safety-alert", "safety-alert-escalation"
SUBJECT = {RAISED_KIND: "Safety alert", ESCALATED_KIND: "Safety alert escalated"}

_topics: dict[str, str] = {}
_lock = threading.Lock()


def topic_name(tenant: str) -> str:
    return f"{os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX}{tenant}"


def topic_arn(tenant: str) -> str:
    """The tenant's topic (created on first use; remembered per process)."""
    name = topic_name(tenant)
    with _lock:
        known = _topics.get(name)
    if known is not None:
        return known
    key = os.environ.get(KEY_ENV, "").strip()
    attributes = {"KmsMasterKeyId": key} if key else {}
    arn = str(client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"])
    with _lock:
        _topics[name] = arn
    return arn


def _links(alert: Alert) -> dict[str, str]:
    from functions.common.settings import api_settings

    base = api_settings().public_base_url  # the FHIR base, e.g. https://host/fhir/R4
    root = base.removesuffix("/fhir/R4")
    return {"flag": f"{base}/Flag/{alert.flag_id}", "worklist": f"{root}/worklist"}


def message(alert: Alert, kind: str, queue: str) -> dict[str, Any]:
    """What subscribers get: ids, codes and links; never a name, a date of birth, an
    answer or a score."""
    owner = f"Practitioner/{alert.owner_id}" if alert.owner_id else None
    assigned = f"Practitioner/{queue.partition('#')[2]}" if "#" in queue else queue.lower()
    return {
        "kind": kind,
        "tenant": alert.tenant,
        "alert": alert.flag_id,
        "flag": f"Flag/{alert.flag_id}",
        "instrument": alert.instrument,
        "reason": alert.reason,
        "responsible": owner,
        "queue": assigned,  # whose work queue lists it now
        "links": _links(alert),
    }


def publish(alert: Alert, kind: str, queue: str) -> str:
    """One message to the tenant's topic; its SNS message id."""
    body = message(alert, kind, queue)
    attributes = {
        "tenant": {"DataType": "String", "StringValue": alert.tenant},
        "kind": {"DataType": "String", "StringValue": kind},
    }
    sent = client("sns").publish(
        TopicArn=topic_arn(alert.tenant),
        Message=json.dumps(body, separators=(",", ":")),
        Subject=SUBJECT[kind],
        MessageAttributes=attributes,
    )
    return str(sent["MessageId"])
