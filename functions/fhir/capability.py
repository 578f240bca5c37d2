"""The CapabilityStatement: exactly what this server supports, and its limits,
built from the resource registry (functions/engine/registry.py)."""

from __future__ import annotations

from typing import Any

from functions.engine import registry
from functions.engine.registry import ResourceType, SearchParam
from functions.engine.search import DEFAULT_COUNT, MAX_COUNT, MAX_MATCH_SET, PREFIXES

COMMON = (
    "Bodies: UTF-8 application/fhir+json, at most 256 KiB, nesting at most 64 levels, no "
    "duplicate keys, FHIR JSON types enforced, strings without control or "
    "bidirectional-override characters; text.div must be well-formed XHTML within FHIR's "
    "narrative rules (refused, never rewritten). A write over DynamoDB's limits (100 items "
    "or 4 MB per transaction, 400 KB per item) is refused with 413. Updates: If-Match is "
    "optional (412 when stale; without it the last writer wins), unless the organisation "
    "requires it (428). Create honours If-None-Exist and criteria in the query string "
    "(200 with the one match, 412 when several match). Prefer: return=minimal | "
    "representation | OperationOutcome. Security labels (meta.security) are set or changed "
    "only by roles with the <type>.label permission; others' writes keep the stored "
    "labels. History (and vread) needs the <type>.history permission and accepts _since."
)
RESULT_PARAMS = [
    ("_count", "number", f"Page size, 0 to {MAX_COUNT} (default {DEFAULT_COUNT}); larger "
     "values are capped. 0 answers the total only. Each page is audited once, naming every "
     "patient it returned; the record appears in each one's trail."),
    ("_sort", "string", f"_lastUpdated or a date parameter, '-' for descending, "
     f"comma-separated. Sorting reads the whole match set (at most {MAX_MATCH_SET} "
     "candidates, else 400)."),
    ("_total", "string", "none | estimate | accurate (_totalMethod is a synonym): both count "
     f"exactly, reading the whole match set (at most {MAX_MATCH_SET} candidates). "
     "The total is also given whenever the result fits one page."),
    ("_summary", "string", "count (the total only) or false; other values are refused."),
    ("_id", "token", "One or more ids, comma-separated (read directly)."),
    ("_lastUpdated", "date", "Prefixes " + " ".join(PREFIXES) + "."),
]  # fmt: skip


def _param(p: SearchParam) -> dict[str, Any]:
    doc = p.documentation
    if p.entry:
        doc += " Indexed tenant-wide (can lead a search)."
    return {"name": p.name, "definition": p.definition, "type": p.type.value, "documentation": doc}


def _operations(decl: ResourceType) -> dict[str, Any]:
    ops = [{"name": o.name, "definition": o.definition, "documentation": o.documentation}
           for o in decl.operations]  # fmt: skip
    return {"operation": ops} if ops else {}


def _resource(decl: ResourceType) -> dict[str, Any]:
    where = (
        "Its own chart (the Patient's id)."
        if decl.is_patient
        else f"In the chart of the Patient its {decl.compartment.element} references; its id "
        "starts with that Patient's id. A write whose patient is unknown, deleted or "
        "another organisation's is refused (400). Searches without patient are "
        "tenant-wide and eventually consistent; with patient they read the chart."
        if decl.compartment is not None
        else "Belongs to no patient."
    )
    return {
        "type": decl.name,
        "profile": decl.profile,
        "documentation": " ".join(x for x in (decl.documentation, where, COMMON) if x),
        "interaction": [{"code": c} for c in decl.interactions],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [_param(p) for p in decl.params]
        + [
            {"name": n, "type": t, "documentation": d}
            | (
                {"definition": f"http://hl7.org/fhir/SearchParameter/Resource-{n[1:]}"}
                if n in ("_id", "_lastUpdated")
                else {}
            )
            for n, t, d in RESULT_PARAMS
        ],
        **_operations(decl),
    }


def capability_statement(base_url: str, released: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "kind": "instance",
        "name": "EmrCapabilityStatement",
        "title": "Behavioral-health EMR FHIR R4 API",
        "software": {"name": "emr", "version": "0.2.0"},
        "implementation": {"description": "Behavioral-health EMR", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Multi-tenant: the tenant is taken from the bearer token only. "
                "Search values never leave the server in clear: search works through keyed "
                "blind-index tokens, and every criterion is then checked on the decrypted "
                "resource. Refused with 400: unknown search parameters, modifiers other than "
                ":exact on strings, chained parameters, _include, _revinclude, _elements, "
                "_summary other than count/false, the 'ap' prefix. JSON only (406 for XML). "
                "Searches that do not name a patient are eventually consistent.",
                "security": {
                    "cors": False,
                    "description": "Bearer ID token issued by the Amazon Cognito user pool; "
                    "tenant from custom:tenant, roles from cognito:groups.",
                },
                "resource": [_resource(d) for d in registry.fhir_types()]
                + [_questionnaire(), _audit_event()],
            }
        ],
    }


def _questionnaire() -> dict[str, Any]:
    return {
        "type": "Questionnaire",
        "documentation": "Read-only, served from code, for every role: phq-9, gad-7, "
        "c-ssrs-screener (version 1.0.0). A QuestionnaireResponse naming one is validated "
        "and scored into an Observation in the same transaction.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "url", "type": "uri", "documentation": "The canonical URL (|version).",
             "definition": "http://hl7.org/fhir/SearchParameter/conformance-url"},
            {"name": "_id", "type": "token", "documentation": "The id.",
             "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
        ],
    }  # fmt: skip


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
