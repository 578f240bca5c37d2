"""The CapabilityStatement: exactly what this server supports, and its limits."""

from __future__ import annotations

from typing import Any

from functions.patients.search import DEFAULT_COUNT, MAX_COUNT

SEARCH_PARAMS = [
    (
        "family",
        "string",
        "Starts-with match on any family-name word; case- and "
        "accent-insensitive; at least 2 characters per word; compared on the first 20.",
    ),
    ("given", "string", "As family, on given names."),
    ("name", "string", "As family, on family or given names (not prefix/suffix/text)."),
    (
        "birthdate",
        "date",
        "Equality at year, month or day precision (YYYY, YYYY-MM, "
        "YYYY-MM-DD, optional 'eq'); no ranges.",
    ),
    ("identifier", "token", "Exact match on [system|]value."),
]


def capability_statement(base_url: str, released: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "kind": "instance",
        "name": "EmrCapabilityStatement",
        "title": "Behavioral-health EMR FHIR R4 API",
        "software": {"name": "emr", "version": "0.1.0"},
        "implementation": {"description": "Behavioral-health EMR", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Multi-tenant: the tenant is taken from the bearer token only. "
                "Search values never leave the server in clear: search works "
                "through keyed blind-index tokens, hence the limits stated per "
                "parameter. Unknown search parameters and modifiers are refused "
                "(400). Search is eventually consistent.",
                "security": {
                    "cors": False,
                    "description": "Bearer ID token issued by the Amazon Cognito user pool; "
                    "tenant from custom:tenant, roles from cognito:groups.",
                },
                "resource": [_patient(), _audit_event()],
            }
        ],
    }


def _patient() -> dict[str, Any]:
    return {
        "type": "Patient",
        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
        "documentation": "name (family or given, with letters or digits) and birthDate (not "
        "in the future) are required. Bodies: UTF-8 application/fhir+json, at most 256 KiB, "
        "nesting at most 64 levels, no duplicate keys, FHIR JSON types enforced, strings "
        "without control or bidirectional-override characters; text.div must be well-formed "
        "XHTML within FHIR's narrative rules (refused, never rewritten). A write over "
        "DynamoDB's limits (100 items or 4 MB per transaction, 400 KB per item) is refused "
        "with 413. Updates require If-Match (428 without it, 412 when stale). Search: "
        "birthdate is eq only, at YYYY, YYYY-MM or YYYY-MM-DD, and must be a real date; "
        "_format=json and _pretty are accepted (ignored). Security labels "
        "(meta.security) are set or changed only by roles with the patient.label permission "
        "(clinician, prescriber, supervisor); others' writes keep the stored labels. "
        "History (and vread) needs the patient.history permission and accepts _since "
        "(a FHIR instant: versions updated at or after it).",
        "interaction": [
            {"code": c}
            for c in (
                "read",
                "vread",
                "update",
                "delete",
                "history-instance",
                "create",
                "search-type",
            )
        ],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {
                "name": n,
                "type": t,
                "documentation": d,
                "definition": f"http://hl7.org/fhir/SearchParameter/"
                f"{'individual' if n in ('family', 'given') else 'Patient'}-{n}",
            }
            for n, t, d in SEARCH_PARAMS
        ]
        + [
            {
                "name": "_count",
                "type": "number",
                "documentation": f"Page size, 1 to {MAX_COUNT} (default {DEFAULT_COUNT}). "
                "Pages follow the Bundle's 'next' link. Each page is audited once, naming "
                "every patient it returned; the record appears in each one's trail.",
            }
        ],
    }


def _audit_event() -> dict[str, Any]:
    return {
        "type": "AuditEvent",
        "documentation": "Read-only, for the compliance role: the audit trail of one patient, "
        "newest first. Every request on PHI writes exactly one record.",
        "interaction": [{"code": "search-type"}],
        "searchParam": [
            {
                "name": "patient",
                "type": "reference",
                "documentation": "Required: Patient id.",
                "definition": "http://hl7.org/fhir/SearchParameter/AuditEvent-patient",
            },
            {
                "name": "_count",
                "type": "number",
                "documentation": f"Page size, 1 to {MAX_COUNT} (default 50).",
            },
        ],
    }
