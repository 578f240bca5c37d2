"""Bearer-token authentication: Cognito ID tokens verified with PyJWT.

Checked: RS256 signature against the pool's JWKS (fetched once and cached;
an unknown `kid` triggers one refetch), `exp`/`iat` with a small clock skew,
`iss` equal to the pool, `aud` equal to the app client, `token_use == "id"`.
Tenant comes only from `custom:tenant`, roles only from `cognito:groups`.
ID tokens are used because Cognito puts custom attributes in them, not in
access tokens (ADR 0004).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt
from jwt import PyJWKClient

from functions.common.errors import Issue, Unauthenticated
from functions.common.principal import Principal
from functions.common.settings import api_settings
from models.keys import TENANT_RE

_client: PyJWKClient | None = None
_lock = threading.Lock()


def _jwks() -> PyJWKClient:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                s = api_settings()
                _client = PyJWKClient(s.jwks_url, cache_jwk_set=True, lifespan=s.jwks_cache_s)
    return _client


class AuthenticationFailed(Unauthenticated):
    """A 401 that also names its reason category, for logs and metrics (never the
    token itself): missing-token, expired, unknown-key, invalid-token,
    not-an-id-token, no-tenant, bad-groups."""

    def __init__(self, issue: Issue, headers: dict[str, str], reason: str) -> None:
        super().__init__(issue, headers)
        self.reason = reason


def _fail(description: str, reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(
        Issue("login", f"Authentication failed: {description}."),
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
        reason,
    )


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            Issue("login", "A bearer token is required."),
            {"WWW-Authenticate": "Bearer"},
            "missing-token",
        )
    return token.strip()


class _VerifiedTokens:
    """Claims of tokens already verified in this process, keyed by the exact token
    string, for at most their own lifetime (checked on every use). A token is
    verified once per container instead of once per request; any other string,
    however similar, goes through full verification."""

    def __init__(self, max_entries: int = 2048) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, token: str, skew_s: int) -> dict[str, Any] | None:
        with self._lock:
            claims = self._claims.get(token)
            if claims is None:
                return None
            if float(claims["exp"]) + skew_s <= time.time():
                del self._claims[token]
                return None
            self._claims.move_to_end(token)
            return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        with self._lock:
            self._claims[token] = claims
            while len(self._claims) > self._max:
                self._claims.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()


_verified = _VerifiedTokens()


def verify(token: str) -> dict[str, Any]:
    s = api_settings()
    cached = _verified.get(token, s.clock_skew_s)
    if cached is not None:
        return cached
    claims = _verify_fully(token)
    _verified.put(token, claims)
    return claims


def _verify_fully(token: str) -> dict[str, Any]:
    s = api_settings()
    try:
        signing_key = _jwks().get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key.key,
            algorithms=["RS256"],
            audience=s.app_client_id,
            issuer=s.issuer,
            leeway=s.clock_skew_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "token_use"]},
        )
    except jwt.ExpiredSignatureError:
        raise _fail("token expired", "expired") from None
    except jwt.PyJWKClientError:
        raise _fail("unknown signing key", "unknown-key") from None
    except jwt.InvalidTokenError as exc:
        raise _fail(type(exc).__name__, "invalid-token") from None
    if claims.get("token_use") != "id":
        raise _fail("an ID token is required", "not-an-id-token")
    return claims


def principal_from(headers: Mapping[str, str]) -> Principal:
    claims = verify(bearer_token(headers))
    tenant = claims.get("custom:tenant")
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise _fail("token carries no tenant", "no-tenant")
    groups = claims.get("cognito:groups") or []
    if not isinstance(groups, list):
        raise _fail("malformed groups claim", "bad-groups")
    return Principal(
        sub=str(claims["sub"]),
        username=claims.get("cognito:username"),
        tenant=tenant,
        roles=frozenset(str(g) for g in groups),
    )
