"""Bearer tokens: signature, expiry, issuer, audience and token_use are verified
against the user pool's JWKS; anything wrong is a 401 OperationOutcome."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import jwt
import moto.cognitoidp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

MOTO_KEY = Path(moto.cognitoidp.__file__).parent / "resources" / "jwks-private.json.gz"


def _pool_key():  # type: ignore[no-untyped-def]
    """moto's Cognito signing key: tokens signed here verify against its JWKS."""
    jwk = json.loads(gzip.decompress(MOTO_KEY.read_bytes()))
    return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))


def _claims(stack, **overrides):  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {
        "sub": "forged-user",
        "iss": stack.issuer(),
        "aud": stack.app_client_id,
        "token_use": "id",
        "iat": now,
        "exp": now + 600,
        "custom:tenant": "demo-clinic",
        "cognito:groups": ["clinician"],
        "cognito:username": "forged",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims, key=None, kid="dummy", alg="RS256"):  # type: ignore[no-untyped-def]
    return jwt.encode(claims, key or _pool_key(), algorithm=alg, headers={"kid": kid})


def _get(api, token):  # type: ignore[no-untyped-def]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return api.http.get("/fhir/R4/Patient?family=zz", headers=headers)


def test_a_well_formed_token_signed_by_the_pool_is_accepted(api, stack):
    assert _get(api, _sign(_claims(stack))).status_code == 200


def test_missing_token_is_401_with_challenge(api):
    r = _get(api, None)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(r.body)["issue"][0]["code"] == "login"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token abc"])
def test_malformed_authorization_header_is_401(api, header):
    r = api.http.get("/fhir/R4/Patient", headers={"Authorization": header})
    assert r.status_code == 401


def test_garbage_token_is_401(api):
    assert _get(api, "not.a.jwt").status_code == 401


def test_expired_token_is_401(api, stack):
    past = int(time.time()) - 3600
    r = _get(api, _sign(_claims(stack, iat=past - 600, exp=past)))
    assert r.status_code == 401
    assert "expired" in json.loads(r.body)["issue"][0]["diagnostics"]


def test_wrong_audience_is_401(api, stack):
    assert _get(api, _sign(_claims(stack, aud="some-other-client"))).status_code == 401


def test_wrong_issuer_is_401(api, stack):
    assert _get(api, _sign(_claims(stack, iss="https://evil.example/pool"))).status_code == 401


def test_access_token_is_401(api, stack):
    assert _get(api, _sign(_claims(stack, token_use="access"))).status_code == 401


def test_token_without_tenant_is_401(api, stack):
    assert _get(api, _sign(_claims(stack, **{"custom:tenant": None}))).status_code == 401


def test_token_with_malformed_tenant_is_401(api, stack):
    claims = _claims(stack, **{"custom:tenant": "demo-clinic#PATIENT#x"})
    assert _get(api, _sign(claims)).status_code == 401


def test_token_signed_by_another_key_is_401(api, stack):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _get(api, _sign(_claims(stack), key=other)).status_code == 401


def test_unsigned_token_is_401(api, stack):
    token = jwt.encode(_claims(stack), key=None, algorithm="none")
    assert _get(api, token).status_code == 401


def test_hs256_token_using_the_public_key_as_secret_is_401(api, stack):
    secret = "s" * 32  # any HMAC secret: the server must refuse HS256 outright
    forged = jwt.encode(_claims(stack), secret, algorithm="HS256", headers={"kid": "dummy"})
    assert _get(api, forged).status_code == 401


def test_tampered_payload_is_401(api, stack):
    head, _, sig = _sign(_claims(stack)).split(".")
    body = jwt.utils.base64url_encode(
        json.dumps(_claims(stack, **{"cognito:groups": ["admin"]})).encode()
    ).decode()
    assert _get(api, f"{head}.{body}.{sig}").status_code == 401


def test_real_cognito_id_token_is_accepted(api):
    assert _get(api, api.token("front_desk", "other-clinic")).status_code == 200
