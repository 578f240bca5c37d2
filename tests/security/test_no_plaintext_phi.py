"""No plaintext PHI in any attribute of any item, nor in any log line."""

from __future__ import annotations

import base64
import json
import logging
import uuid

import boto3
import pytest

from tests.conftest import patient_body


@pytest.fixture(scope="module")
def distinctive(api):  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    values = {
        "family": f"Quixwhistle{tag}",
        "given": f"Zebulonia{tag}",
        "mrn": f"MRN{tag}Q",
        "phone": f"555-01{tag[:2]}",
        "street": f"{tag} Larkspur Lane",
        "birth": "1931-07-29",
        "reason": f"Panicattacks{tag}",
        "code": f"F41{tag}",
        "visit": "1931-08-14",
    }
    return values


def _phi_strings(v: dict[str, str]) -> list[str]:
    return [
        v["family"],
        v["given"],
        v["mrn"],
        v["phone"],
        v["street"],
        v["birth"],
        v["family"].lower(),
        v["given"].lower(),
        v["reason"],
        v["code"],
        v["visit"],
    ]


def _exercise(api, v):  # type: ignore[no-untyped-def]
    body = {
        **patient_body(v["family"], v["given"], v["birth"], mrn=v["mrn"]),
        "telecom": [{"system": "phone", "value": v["phone"]}],
        "address": [{"line": [v["street"]], "city": "Springfield"}],
    }
    created = api.create(body)
    url = f"/fhir/R4/Patient/{created['id']}"
    api.http.get(url, headers=api.headers())
    api.http.get(
        f"/fhir/R4/Patient?family={v['family'][:6]}&given={v['given']}", headers=api.headers()
    )
    api.http.get(
        f"/fhir/R4/Patient?identifier={v['mrn']}&birthdate={v['birth']}", headers=api.headers()
    )
    api.http.put(
        url, body=json.dumps({**created, "gender": "female"}), headers=api.headers(If_Match='W/"1"')
    )
    api.http.put(
        url,
        body=json.dumps({**created, "birthDate": v["family"]}),
        headers=api.headers(If_Match='W/"2"'),
    )
    api.http.get(f"{url}/_history", headers=api.headers())
    api.http.get(url, headers=api.headers("biller", "other-clinic"))
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{created['id']}"},
        "period": {"start": f"{v['visit']}T10:00:00Z", "end": f"{v['visit']}T10:50:00Z"},
        "reasonCode": [{"text": v["reason"]}],
    }
    api.http.post("/fhir/R4/Encounter", body=json.dumps(encounter), headers=api.headers())
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{created['id']}"},
        "code": {"coding": [{"system": "urn:test:codes", "code": v["code"]}], "text": v["reason"]},
        "onsetDateTime": v["visit"],
    }
    api.http.post("/fhir/R4/Condition", body=json.dumps(condition), headers=api.headers())
    for query in (
        f"Encounter?patient={created['id']}&date=ge{v['visit']}",
        f"Condition?code=urn:test:codes|{v['code']}",
        f"Encounter?date={v['visit']}",
    ):
        assert api.http.get(f"/fhir/R4/{query}", headers=api.headers()).status_code == 200
    return created


def _item_text(item: dict) -> str:  # type: ignore[type-arg]
    """Every attribute as text; binary attributes both raw and base64-decoded."""
    parts = []
    for value in item.values():
        for kind, raw in value.items():
            if kind == "B":
                blob = raw if isinstance(raw, bytes) else base64.b64decode(raw)
                parts.append(blob.decode("latin-1"))
            else:
                parts.append(json.dumps(raw))
    return "\n".join(parts)


def test_no_item_in_the_table_holds_plaintext_phi(api, stack, distinctive):
    _exercise(api, distinctive)
    ddb = boto3.client("dynamodb")
    items, start = [], None
    while True:
        kwargs = {"TableName": stack.table_name, **({"ExclusiveStartKey": start} if start else {})}
        page = ddb.scan(**kwargs)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert len(items) > 20
    everything = "\n".join(_item_text(i) for i in items)
    for secret in _phi_strings(distinctive):
        assert secret not in everything, f"plaintext PHI found in the table: {secret!r}"


def test_no_log_line_holds_phi(api, distinctive, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    created = _exercise(
        api,
        {**distinctive, "family": distinctive["family"] + "L", "given": distinctive["given"] + "L"},
    )
    api.http.get(f"/fhir/R4/Patient/{created['id']}", headers={"Authorization": "Bearer x"})
    out, err = capfd.readouterr()
    logged = "\n".join([out, err, caplog.text] + [str(r.__dict__) for r in caplog.records])
    assert "patient.create" in logged  # the request log is really captured here
    for secret in _phi_strings(distinctive):
        assert secret not in logged, f"PHI in a log line: {secret!r}"
