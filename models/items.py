"""PynamoDB items of the single table.

One base model carries the key attributes and a `type` discriminator; each kind
of item is a subclass, so a Query over a partition (a patient's chart) yields
typed items. Items carry their own fields: code never parses keys to get data
back. No attribute holds plaintext PHI: bodies are envelope-encrypted
(models/crypto.py) and searchable values exist only as keyed HMAC tokens.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    DiscriminatorAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from models.settings import storage_settings


class Gsi1(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class TableItem(Model):
    class Meta:
        table_name = storage_settings().table_name
        region = storage_settings().region
        max_retry_attempts = 3
        connect_timeout_seconds = 2
        read_timeout_seconds = 5

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    type = DiscriminatorAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class _VersionedBody(TableItem):
    """Fields shared by current resources, their history and search entries."""

    tenant = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    patient_id = UnicodeAttribute(null=True)  # None: a resource of no patient (Practitioner)
    version = NumberAttribute()
    last_updated = UnicodeAttribute()
    data_class = UnicodeAttribute()
    deleted = BooleanAttribute(default=False)
    body = BinaryAttribute(legacy_encoding=False, null=True)


class ResourceItem(_VersionedBody, discriminator="resource"):
    """The current version of a FHIR resource (a tombstone once deleted)."""

    tokens = UnicodeSetAttribute(null=True)  # tokens of this version that have an entry
    filters = UnicodeSetAttribute(null=True)  # every token of this version, for filters
    state = UnicodeAttribute(null=True)  # keyed MAC of a guarded status (StateMachine)


class HistoryItem(_VersionedBody, discriminator="history"):
    """One immutable item per version, for vread and _history."""


class SearchEntryItem(_VersionedBody, discriminator="search"):
    """A copy of the current body under one blind-index token (gsi1), so that a
    search is a single Query. `filters` lets further criteria filter server-side."""

    token = UnicodeAttribute()
    filters = UnicodeSetAttribute(null=True)


class AuditItem(TableItem, discriminator="audit"):
    audit_id = UnicodeAttribute()
    tenant = UnicodeAttribute()
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    actor_name = UnicodeAttribute(null=True)
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    action = UnicodeAttribute()
    outcome = UnicodeAttribute()
    status = NumberAttribute()
    resource_type = UnicodeAttribute(null=True)
    resource_id = UnicodeAttribute(null=True)
    patient_id = UnicodeAttribute(null=True)
    version = NumberAttribute(null=True)
    request_id = UnicodeAttribute()
    source_ip = UnicodeAttribute(null=True)
    route = UnicodeAttribute(null=True)
    query_params = ListAttribute(of=UnicodeAttribute, null=True)
    result_count = NumberAttribute(null=True)
    purpose = UnicodeAttribute(null=True)  # declared purpose of use, e.g. TREAT
    overrides = ListAttribute(of=UnicodeAttribute, null=True)  # e.g. ["duplicate-class"]


class OutboxItem(TableItem, discriminator="outbox"):
    """A domain event written in the same transaction as the change it reports;
    the stream publisher sends it to EventBridge. Until delivered it is listed in
    gsi1 (`TENANT#t#OUTBOX#PENDING`); delivery removes that entry and sets the TTL."""

    event_id = UnicodeAttribute()
    tenant = UnicodeAttribute()
    source = UnicodeAttribute()
    detail_type = UnicodeAttribute()  # on the wire: "<name>.v<major>"
    detail = UnicodeAttribute()  # JSON of a versioned event model (ids and codes only)
    occurred_at = UnicodeAttribute()
    delivered_at = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # TTL, set on delivery only


class ConditionalCreateItem(TableItem, discriminator="conditional-create"):
    """The resource a conditional create made, claimed under the keyed MAC of its
    criteria for a short while: a second create with the same criteria in that
    window finds it here (consistently) instead of in a search index that may lag."""

    tenant = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    claimed_until = NumberAttribute()  # epoch seconds; the claim is void after it
    expires_at = NumberAttribute()  # TTL: DynamoDB removes the item some time later


class TenantKeyItem(TableItem, discriminator="tenant-key"):
    """A per-tenant secret (the blind-index HMAC key), stored KMS-encrypted."""

    tenant = UnicodeAttribute()
    purpose = UnicodeAttribute()
    encrypted_key = BinaryAttribute(legacy_encoding=False)
    created_at = UnicodeAttribute()


class ChartEntryItem(TableItem, discriminator="chart"):
    """A summary in a patient's chart (docs/adr/0008-the-chart-in-one-query.md):
    header fields of an active problem, a medication, a flag, a score or a note,
    sealed like bodies under the data class of what it summarises."""

    tenant = UnicodeAttribute()
    patient_id = UnicodeAttribute()
    key = UnicodeAttribute()
    data_class = UnicodeAttribute()
    body = BinaryAttribute(legacy_encoding=False)
    seq = NumberAttribute(null=True)  # position in a ring (note headers, scores)


class CounterItem(TableItem, discriminator="counter"):
    """How many entries a chart ring has had: the next one takes slot value % size."""

    tenant = UnicodeAttribute()
    value = NumberAttribute()
