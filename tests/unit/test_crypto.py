"""Envelope encryption with a counting KMS double: the cache bounds and the binding."""

from __future__ import annotations

import os
from typing import Any

import pytest

from models import crypto
from models.crypto import DataKeyCache, DecryptionError, Envelope


class CountingKms:
    """Behaves like KMS for these calls: the data key only opens under its context."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._issued: dict[bytes, tuple[bytes, dict[str, str]]] = {}

    def generate_data_key(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("GenerateDataKey")
        plain, blob = os.urandom(32), os.urandom(48)
        self._issued[blob] = (plain, dict(kw["EncryptionContext"]))
        return {"Plaintext": plain, "CiphertextBlob": blob}

    def decrypt(self, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append("Decrypt")
        plain, context = self._issued[kw["CiphertextBlob"]]
        if context != kw["EncryptionContext"]:
            raise ClientError({"Error": {"Code": "InvalidCiphertextException"}}, "Decrypt")
        return {"Plaintext": plain}


def _envelope(max_age: float = 300, max_uses: int = 1000) -> tuple[Envelope, CountingKms]:
    kms = CountingKms()
    return Envelope(kms, "alias/emr-data", DataKeyCache(max_age, max_uses)), kms


def test_round_trip_and_warm_calls_make_no_kms_call():
    env, kms = _envelope()
    blobs = [env.seal(b"body %d" % i, tenant="t1", data_class="phi", aad=b"a") for i in range(50)]
    assert kms.calls == ["GenerateDataKey"]
    assert all(
        env.open(b, tenant="t1", data_class="phi", aad=b"a").startswith(b"body") for b in blobs
    )
    assert kms.calls == ["GenerateDataKey"]


def test_cold_process_decrypts_once_per_data_key():
    env, kms = _envelope()
    blob = env.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    cold = Envelope(kms, "alias/emr-data", DataKeyCache(300, 1000))
    for _ in range(100):
        cold.open(blob, tenant="t1", data_class="phi", aad=b"a")
    assert kms.calls == ["GenerateDataKey", "Decrypt"]


def test_data_key_is_replaced_after_max_uses():
    env, kms = _envelope(max_uses=3)
    for _ in range(7):
        env.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    assert kms.calls.count("GenerateDataKey") == 3


def test_data_key_is_replaced_after_max_age(monkeypatch):
    env, kms = _envelope(max_age=10)
    clock = [1000.0]
    monkeypatch.setattr(crypto.time, "monotonic", lambda: clock[0])
    env.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    clock[0] += 11
    blob = env.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    assert kms.calls.count("GenerateDataKey") == 2
    clock[0] += 11
    fresh = Envelope(kms, "k", env.cache)
    fresh.open(blob, tenant="t1", data_class="phi", aad=b"a")
    assert kms.calls[-1] == "Decrypt"


def test_tenants_and_classes_get_separate_keys():
    env, kms = _envelope()
    env.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    env.seal(b"x", tenant="t2", data_class="phi", aad=b"a")
    env.seal(b"x", tenant="t1", data_class="psychotherapy", aad=b"a")
    assert kms.calls.count("GenerateDataKey") == 3


def test_wrong_aad_fails():
    env, _ = _envelope()
    blob = env.seal(b"secret", tenant="t1", data_class="phi", aad=b"item-1")
    with pytest.raises(DecryptionError):
        env.open(blob, tenant="t1", data_class="phi", aad=b"item-2")


def test_cached_key_is_not_used_under_another_context():
    env, kms = _envelope()
    blob = env.seal(b"secret", tenant="t1", data_class="phi", aad=b"a")
    with pytest.raises(DecryptionError):
        env.open(blob, tenant="t2", data_class="phi", aad=b"a")
    assert kms.calls[-1] == "Decrypt"  # KMS was asked, and refused


@pytest.mark.parametrize("blob", [b"", b"XX\x00\x01", b"E1\x00\x30" + b"k" * 10])
def test_malformed_envelopes_fail_cleanly(blob):
    env, _ = _envelope()
    with pytest.raises(DecryptionError):
        env.open(blob, tenant="t1", data_class="phi", aad=b"a")


def test_tampered_ciphertext_fails():
    env, _ = _envelope()
    blob = bytearray(env.seal(b"secret", tenant="t1", data_class="phi", aad=b"a"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        env.open(bytes(blob), tenant="t1", data_class="phi", aad=b"a")


def test_a_cached_decryption_key_is_asked_for_again_after_max_uses():
    writer, kms = _envelope()
    blob = writer.seal(b"x", tenant="t1", data_class="phi", aad=b"a")
    reader = Envelope(kms, "alias/emr-data", DataKeyCache(300, max_uses=4))
    for _ in range(10):
        reader.open(blob, tenant="t1", data_class="phi", aad=b"a")
    # 1 Decrypt and 4 cached uses, then a fresh Decrypt and 4 more cached uses
    assert kms.calls.count("Decrypt") == 2
