"""What signing writes, as pure functions (functions/notes/signing.py)."""

from __future__ import annotations

import json
from typing import Any

from functions.notes.declarations import AWAITING_COSIGN_URL
from functions.notes.documents import with_text
from functions.notes.signing import (
    SUPERVISOR_URL,
    awaiting_cosign,
    cosigned_note,
    header,
    signed_note,
    supervisor_of,
)

AT = "2026-11-26T10:00:00.000Z"
SECRET = "Patient disclosed the secret words."


def _note(**extra: Any) -> dict[str, Any]:
    body = {
        "resourceType": "DocumentReference",
        "id": "p1.01J0000000000000000000000Z",
        "meta": {"versionId": "2"},
        "docStatus": "preliminary",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/t1"}],
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "context": {"encounter": [{"reference": "Encounter/e1"}]},
        "content": [{"attachment": {}}],
        **extra,
    }
    return with_text(body, SECRET)


def test_a_trainee_is_a_practitioner_naming_a_supervisor():
    ext = [{"url": SUPERVISOR_URL, "valueReference": {"reference": "Practitioner/s1"}}]
    assert supervisor_of({"extension": ext}) == "Practitioner/s1"
    assert supervisor_of({}) is None
    bad = [{"url": SUPERVISOR_URL, "valueReference": {"reference": "Patient/x"}}]
    assert supervisor_of({"extension": bad}) is None


def test_signing_a_non_trainees_note_makes_it_final_authenticated_by_its_author():
    signed = signed_note(_note(), "Practitioner/t1", AT, None)
    assert signed["docStatus"] == "final" and signed["date"] == AT
    assert signed["authenticator"] == {"reference": "Practitioner/t1"}
    assert "meta" not in signed and awaiting_cosign(signed) is None


def test_signing_a_trainees_note_leaves_it_awaiting_the_supervisor():
    signed = signed_note(_note(date="2026-01-01T00:00:00Z"), "Practitioner/t1", AT,
                         "Practitioner/s1")  # fmt: skip
    assert signed["date"] == "2026-01-01T00:00:00Z"
    assert awaiting_cosign(signed) == "Practitioner/s1" and "authenticator" not in signed
    cosigned = cosigned_note(signed, "Practitioner/s1")
    assert awaiting_cosign(cosigned) is None and "extension" not in cosigned
    assert cosigned["authenticator"] == {"reference": "Practitioner/s1"}


def test_other_extensions_survive_signing_and_cosigning():
    other = {"url": "https://example.org/x", "valueString": "kept"}
    signed = signed_note(_note(extension=[other]), "Practitioner/t1", AT, "Practitioner/s1")
    cosigned = cosigned_note(signed, "Practitioner/s1")
    assert other in cosigned["extension"]
    assert [e["url"] for e in cosigned["extension"]] == ["https://example.org/x"]
    assert AWAITING_COSIGN_URL not in json.dumps(cosigned)


def test_the_header_holds_header_fields_and_never_the_text():
    signed = signed_note(_note(), "Practitioner/t1", AT, "Practitioner/s1")
    summary = header("p1.01J0000000000000000000000Z", 3, signed)
    assert summary["resourceType"] == "DocumentReference" and summary["awaitingCosign"] is True
    assert summary["author"] == "Practitioner/t1" and summary["encounter"] == "Encounter/e1"
    text = json.dumps(summary)
    assert "secret" not in text and signed["content"][0]["attachment"]["data"] not in text
