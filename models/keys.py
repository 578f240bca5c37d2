"""Every key of the single table is built here and only here.

Keys are opaque strings and every one starts with the tenant, so no key
condition can reach across tenants. Identifiers that go into keys are checked
first: a tenant or id can never smuggle a `#` into another key's shape.
See models/README.md for the access patterns these keys serve.
"""

from __future__ import annotations

import re

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id datatype
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # base64url HMAC tokens

CURRENT = "R"  # current version of a resource
HISTORY = "H"  # one item per version


class KeyError_(ValueError):
    """An identifier that may not appear in a key."""


def _tenant(tenant: str) -> str:
    if not TENANT_RE.match(tenant):
        raise KeyError_("tenant")
    return tenant


def _id(value: str, field: str = "id") -> str:
    if not ID_RE.match(value):
        raise KeyError_(field)
    return value


def valid_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def tenant_pk(tenant: str) -> str:
    return f"TENANT#{_tenant(tenant)}"


def patient_pk(tenant: str, patient_id: str) -> str:
    """The patient's item collection: the chart, its history and search entries."""
    return f"TENANT#{_tenant(tenant)}#PATIENT#{_id(patient_id)}"


def resource_sk(resource_type: str, resource_id: str) -> str:
    return f"{CURRENT}#{resource_type}#{_id(resource_id)}"


def history_sk(resource_type: str, resource_id: str, version: int) -> str:
    return f"{HISTORY}#{resource_type}#{_id(resource_id)}#{version:010d}"


def history_prefix(resource_type: str, resource_id: str) -> str:
    return f"{HISTORY}#{resource_type}#{_id(resource_id)}#"


LABELS = "L"  # keyed MAC of a resource's security labels


def labels_sk(resource_type: str, resource_id: str) -> str:
    """Beside the chart, outside its `R#` range: a chart Query never carries it."""
    return f"{LABELS}#{resource_type}#{_id(resource_id)}"


def patients_list_pk(tenant: str) -> str:
    """gsi1: every current Patient of a tenant, oldest first (ids are ULIDs)."""
    return f"TENANT#{_tenant(tenant)}#PATIENTS"


SEARCH_END = "S$"  # sorts after every `S#<token>`


def search_entry_sk(token: str) -> str:
    if not TOKEN_RE.match(token):
        raise KeyError_("token")
    return f"S#{token}"


def search_pk(tenant: str, token: str) -> str:
    """gsi1: one partition per blind-index token."""
    if not TOKEN_RE.match(token):
        raise KeyError_("token")
    return f"TENANT#{_tenant(tenant)}#SEARCH#{token}"


def audit_patient_pk(tenant: str, patient_id: str) -> str:
    return f"TENANT#{_tenant(tenant)}#AUDIT#PATIENT#{_id(patient_id)}"


def audit_tenant_pk(tenant: str, day: str) -> str:
    """Audit records that concern no single patient (searches, denied lists).
    Requests without a valid token have no tenant and are not stored at all: they
    are logged and counted (functions/common/http.py)."""
    return f"TENANT#{_tenant(tenant)}#AUDIT#DAY#{day}"


def audit_sk(at_iso: str, audit_id: str) -> str:
    return f"{at_iso}#{audit_id}"


def audit_day_gsi(tenant: str, day: str) -> str:
    """gsi1: a tenant's audit records of one day, whatever the patient."""
    return f"TENANT#{_tenant(tenant)}#AUDITDAY#{day}"


def outbox_pk(tenant: str, event_id: str) -> str:
    return f"TENANT#{_tenant(tenant)}#OUTBOX#{_id(event_id)}"


OUTBOX_SK = "EVENT"


def tenant_key_sk(purpose: str) -> str:
    return f"KEY#{purpose}"
