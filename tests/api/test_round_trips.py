"""Round trips per request, counted by the moto server itself (counts, not times:
these do not depend on how busy the machine is). `make bench` reports the same
figures; these tests keep them from regressing."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from functions.engine.search import MAX_COUNT
from tests.conftest import patient_body


def _calls(moto, request: Callable[[], object]) -> Counter[str]:  # type: ignore[no-untyped-def]
    before = moto.counter.snapshot()
    request()
    after = moto.counter.snapshot()
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})


@pytest.fixture(scope="module")
def warm(api):  # type: ignore[no-untyped-def]
    """A patient, with JWKS, tenant key and data key already cached in this process."""
    family = "Trips" + uuid.uuid4().hex[:6]
    created = api.create(patient_body(family))
    api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers())
    api.http.get(f"/fhir/R4/Patient?family={family}", headers=api.headers())
    return created, family


def test_a_warm_read_is_one_get_and_one_audit_put(api, moto, warm):
    created, _ = warm
    calls = _calls(
        moto, lambda: api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers())
    )
    assert calls == Counter({"dynamodb.GetItem": 1, "dynamodb.PutItem": 1})


def test_a_warm_create_is_one_transaction(api, moto, warm):
    body = json.dumps(patient_body("Trips" + uuid.uuid4().hex[:6]))
    calls = _calls(
        moto, lambda: api.http.post("/fhir/R4/Patient", headers=api.headers(), body=body)
    )
    assert calls == Counter({"dynamodb.TransactWriteItems": 1})


def test_an_update_is_one_transaction_without_a_read(api, moto, warm):
    created = api.create(patient_body("Trips" + uuid.uuid4().hex[:6]))
    calls = _calls(
        moto,
        lambda: api.http.put(
            f"/fhir/R4/Patient/{created['id']}",
            body=json.dumps({**created, "gender": "male"}),
            headers=api.headers(If_Match='W/"1"'),
        ),
    )
    assert calls == Counter({"dynamodb.TransactWriteItems": 1})


def test_a_warm_search_is_one_query_and_one_audit_transaction(api, moto, warm):
    """The audit record and its copy in each returned patient's trail are one
    TransactWriteItems, in place of the record's PutItem: no extra round trip."""
    _, family = warm
    calls = _calls(
        moto,
        lambda: api.http.get(
            f"/fhir/R4/Patient?family={family[:7]}&birthdate=1985", headers=api.headers()
        ),
    )
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1})


def test_a_full_page_of_the_largest_count_is_still_two_round_trips(api, moto):
    family = "Full" + uuid.uuid4().hex[:6]
    for n in range(MAX_COUNT + 1):
        api.create(patient_body(family, given=f"Gi{n:03d}"))
    url = f"/fhir/R4/Patient?family={family}&_count={MAX_COUNT}"
    response: list[object] = []
    calls = _calls(moto, lambda: response.append(api.http.get(url, headers=api.headers())))
    page = json.loads(response[0].body)  # type: ignore[attr-defined]
    assert len(page["entry"]) == MAX_COUNT
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.TransactWriteItems": 1})


def test_a_search_that_finds_nobody_is_one_query_and_one_audit_put(api, moto, warm):
    calls = _calls(
        moto,
        lambda: api.http.get(
            f"/fhir/R4/Patient?family=Nobody{uuid.uuid4().hex[:6]}", headers=api.headers()
        ),
    )
    assert calls == Counter({"dynamodb.Query": 1, "dynamodb.PutItem": 1})


def test_a_count_over_what_one_audit_transaction_holds_is_capped(api):
    """R4: the server may return fewer than asked; the next link carries on."""
    family = "Capped" + uuid.uuid4().hex[:6]
    for _ in range(MAX_COUNT + 2):
        api.create(patient_body(family))
    r = api.http.get(f"/fhir/R4/Patient?name={family}&_count=1000", headers=api.headers())
    assert r.status_code == 200
    page = json.loads(r.body)
    assert len(page["entry"]) == MAX_COUNT
    assert any(link["relation"] == "next" for link in page["link"])


def test_warm_reads_call_neither_kms_nor_the_jwks_endpoint(api, moto, warm):
    created, _ = warm

    def reads() -> None:
        for _ in range(20):
            api.http.get(f"/fhir/R4/Patient/{created['id']}", headers=api.headers())

    calls = _calls(moto, reads)
    assert not [op for op in calls if op.startswith("kms.") or op.startswith("http.")]
