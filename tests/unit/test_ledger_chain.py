"""The ledger's pure rules: canonical entries, linking, the verify walk with each of
its reasons, batching, and how an entry reads as a FHIR AuditEvent (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.audit.compliance import parse
from functions.audit.ledger import BUDGET, LedgerEvent, batches, link, patients_of
from functions.audit.render import audit_event, name_of
from functions.audit.verify import Link, check
from functions.common.errors import Invalid
from models.ledger import GENESIS, Head, canonical, decode, digest

RECORDED = "2026-01-02T03:04:05.678Z"


def event(n: int, **detail: Any) -> LedgerEvent:
    body = {"event_id": f"e{n}", "tenant": "t1", "occurred_at": "2026-01-02T03:00:00.000Z",
            "actor": "u-1", "request_id": f"r{n}", "version": 1, **detail}  # fmt: skip
    return LedgerEvent(f"e{n}", "t1", "emr.audit", "phi.accessed.v1", body["occurred_at"], body)


def links(n: int) -> tuple[Head, list[Link]]:
    entries = link(Head(0, GENESIS, ""), [event(i) for i in range(n)], RECORDED)
    return Head(entries[-1].seq, entries[-1].hash, RECORDED), [
        Link(e.seq, e.text, e.hash) for e in entries
    ]


def test_canonical_text_is_sorted_compact_and_ascii():
    assert (
        canonical({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == '{"a":{"c":[1,2],"d":"\\u00e9"},"b":1}'
    )


def test_each_entry_names_its_seq_the_previous_hash_and_the_event():
    head = Head(7, "ab" * 32, "2026-01-01T00:00:00.000Z")
    entries = link(head, [event(1), event(2)], RECORDED)
    first, second = (decode(e.text) for e in entries)
    assert (first["seq"], first["prev"]) == (8, head.hash)
    assert (second["seq"], second["prev"]) == (9, entries[0].hash)
    assert entries[0].hash == digest(entries[0].text)
    assert entries[0].text == canonical(first)
    assert first["event"] == {
        "event_id": "e1", "source": "emr.audit", "detail_type": "phi.accessed.v1",
        "occurred_at": "2026-01-02T03:00:00.000Z", "tenant": "t1", "detail": event(1).detail,
    }  # fmt: skip
    assert first["recorded"] == RECORDED


def test_index_times_are_utc_milliseconds_whatever_the_event_wrote():
    late = LedgerEvent("e9", "t1", "emr.x", "x.y.v1", "2026-01-02T05:00:00+02:00", {})
    odd = LedgerEvent("e8", "t1", "emr.x", "x.y.v1", "not a time", {})
    entries = link(Head(0, GENESIS, ""), [late, odd], RECORDED)
    assert entries[0].time_sk == "2026-01-02T03:00:00.000Z#000000000001"
    assert entries[1].time_sk == f"{RECORDED}#000000000002"


def test_patients_are_every_valid_id_named_once():
    detail = {"patient_id": "p1", "patient_ids": ["p2", "p1", "bad#id", None]}
    assert patients_of(detail) == ["p1", "p2"]


def test_batches_fit_one_transaction_and_a_huge_event_goes_alone():
    small = [event(i, patient_id=f"p{i}") for i in range(70)]
    huge = event(99, patient_ids=[f"q{i}" for i in range(99)])
    sizes = [len(b) for b in batches([*small[:40], huge, *small[40:]])]
    assert sizes == [32, 8, 1, 30]
    assert all(3 * n <= BUDGET for n in (32, 30))


def test_an_intact_chain_verifies():
    head, chain = links(4)
    report = check("t1", head, chain)
    assert report.verified and report.entries == 4


def _replace(chain: list[Link], index: int, **changes: Any) -> list[Link]:
    old = chain[index]
    return [*chain[:index], Link(**{**old.__dict__, **changes}), *chain[index + 1 :]]


def _rewritten(chain: list[Link], index: int, change: dict[str, Any]) -> list[Link]:
    body = {**decode(chain[index].text), **change}
    text = canonical(body)
    return _replace(chain, index, text=text, hash=digest(text))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda c: c[:1] + c[2:], (2, "missing")),
        (lambda c: c[1:], (1, "missing")),
        (lambda c: _replace(c, 2, text=c[2].text.replace("e2", "e7")), (3, "hash-mismatch")),
        (lambda c: _replace(c, 1, text="not json", hash=digest("not json")), (2, "malformed")),
        (lambda c: _rewritten(c, 1, {"seq": 9}), (2, "seq-mismatch")),
        (
            lambda c: _rewritten(c, 1, {"recorded": "2030-01-01T00:00:00.000Z"}),
            (3, "prev-mismatch"),
        ),
        (lambda c: _rewritten(c, 0, {"prev": "f" * 64}), (1, "prev-mismatch")),
    ],
)
def test_the_first_fault_is_reported_with_its_reason(tamper, expected):
    head, chain = links(4)
    report = check("t1", head, tamper(chain)).to_json()
    assert report["verified"] is False
    assert (report["first_broken"]["seq"], report["first_broken"]["reason"]) == expected


def test_a_head_that_does_not_name_the_last_entry_is_reported():
    head, chain = links(3)
    assert check("t1", Head(5, head.hash, RECORDED), chain).first_broken.__dict__ == {  # type: ignore[union-attr]
        "seq": 4, "reason": "missing"
    }  # fmt: skip
    assert check("t1", Head(2, head.hash, RECORDED), chain).first_broken.__dict__ == {  # type: ignore[union-attr]
        "seq": 2, "reason": "head-mismatch"
    }  # fmt: skip
    wrong = Head(3, "0" * 64, RECORDED)
    assert check("t1", wrong, chain).first_broken.reason == "head-mismatch"  # type: ignore[union-attr]


def _render(detail_type: str, **detail: Any) -> dict[str, Any]:
    body = {"event_id": "e1", "actor": "u-1", "request_id": "r1", **detail}
    at = "2026-01-02T03:00:00.000Z"
    (entry,) = link(Head(0, GENESIS, ""), [LedgerEvent("e1", "t1", "emr.audit", detail_type, at,
                                                       body)], RECORDED)  # fmt: skip
    return audit_event(entry.text, entry.hash)


def test_a_phi_access_reads_as_a_rest_audit_event():
    resource = _render(
        "phi.accessed.v1", action="patient.search", outcome="denied", roles=["biller"],
        patient_ids=["p1", "p2"], source_ip="10.0.0.1", purpose="TREAT", overrides=["dup"],
    )  # fmt: skip
    assert resource["type"]["code"] == "rest" and resource["action"] == "E"
    assert resource["outcome"] == "8"
    assert resource["agent"][0]["who"]["identifier"]["value"] == "u-1"
    assert resource["agent"][0]["network"] == {"address": "10.0.0.1", "type": "2"}
    refs = [e["what"].get("reference") for e in resource["entity"]]
    assert refs == ["Patient/p1", "Patient/p2"]
    assert resource["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    ext = {x["url"]: x for x in resource["extension"]}
    assert ext["urn:emr:ledger-seq"]["valueInteger"] == 1
    assert ext["urn:emr:overridden-rules"]["valueString"] == "dup"
    json.dumps(resource)  # plain JSON


def test_a_domain_event_reads_as_an_audit_event_of_its_type():
    resource = _render("note.signed.v1", patient_id="p1", encounter_id="enc-1", document_id="d1")
    assert resource["type"] == {"system": "urn:emr:event-type", "code": "note.signed"}
    assert resource["outcome"] == "0" and resource["action"] == "E"
    systems = [e["what"].get("identifier", {}).get("system") for e in resource["entity"]]
    assert systems == [None, "urn:emr:document_id", "urn:emr:encounter_id"]
    assert name_of("patient.created.v12") == "patient.created"


@pytest.mark.parametrize(
    ("dates", "lo", "hi", "empty"),
    [
        (["2026-01"], "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", False),
        (["ge2026-01-05", "lt2026-01-07"], "2026-01-05T00:00:00.000Z", "2026-01-07T00:00:00.000Z",
         False),
        (["gt2026-01-05", "le2026-01-06"], "2026-01-06T00:00:00.000Z", "2026-01-07T00:00:00.000Z",
         False),
        (["ge2026-02", "lt2026-01"], "2026-02-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", True),
    ],
)  # fmt: skip
def test_date_prefixes_narrow_the_window(dates, lo, hi, empty):
    query = parse({"date": dates})
    assert (query.window.lo, query.window.hi, query.empty) == (lo, hi, empty)


def test_a_query_needs_a_patient_an_agent_or_a_date():
    with pytest.raises(Invalid):
        parse({"_count": ["5"]})
