"""API settings, parsed once from the environment (set by infra/template.json
in AWS and by devstack/provision.py locally)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

LOCAL_BASE_URL = "http://127.0.0.1:{port}/fhir/R4"


@dataclass(frozen=True)
class ApiSettings:
    region: str
    user_pool_id: str
    app_client_id: str
    issuer: str
    jwks_url: str
    max_body_bytes: int
    jwks_cache_s: int
    clock_skew_s: int
    # Every link the API writes starts with this (EMR_PUBLIC_BASE_URL; when unset,
    # the local stack's http://127.0.0.1:${EMR_API_PORT:-8000}/fhir/R4).
    public_base_url: str
    public_base_url_configured: bool
    # Tenants whose updates must carry If-Match (EMR_IF_MATCH_REQUIRED_TENANTS, comma-
    # separated): FHIR makes version-aware updates optional, some clinics want them.
    if_match_required: frozenset[str] = frozenset()


def checked_base_url(value: str) -> str:
    """An absolute http(s) URL with a host and nothing a link must not carry
    (credentials, query, fragment, whitespace or control characters); no trailing /."""
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number
        port_ok = False
    clean = value.isprintable() and not any(c.isspace() for c in value)
    if (
        not (clean and port_ok)
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            "EMR_PUBLIC_BASE_URL must be an absolute http(s) URL such as "
            "https://api.example.org/fhir/R4 (no credentials, query or fragment)"
        )
    return value.rstrip("/")


def _public_base_url() -> tuple[str, bool]:
    configured = os.environ.get("EMR_PUBLIC_BASE_URL", "").strip()
    if configured:
        return checked_base_url(configured), True
    port = os.environ.get("EMR_API_PORT", "").strip() or "8000"
    if not port.isdigit():
        raise ValueError("EMR_API_PORT must be a port number")
    return checked_base_url(LOCAL_BASE_URL.format(port=int(port))), False


@lru_cache(maxsize=1)
def api_settings() -> ApiSettings:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    pool = os.environ.get("EMR_USER_POOL_ID", "")
    issuer = (
        os.environ.get("EMR_JWT_ISSUER") or f"https://cognito-idp.{region}.amazonaws.com/{pool}"
    )
    base, configured = _public_base_url()
    return ApiSettings(
        region=region,
        user_pool_id=pool,
        app_client_id=os.environ.get("EMR_APP_CLIENT_ID", ""),
        issuer=issuer,
        jwks_url=os.environ.get("EMR_JWKS_URL") or f"{issuer}/.well-known/jwks.json",
        max_body_bytes=int(os.environ.get("EMR_MAX_BODY_BYTES", str(256 * 1024))),
        jwks_cache_s=int(os.environ.get("EMR_JWKS_CACHE_S", "3600")),
        clock_skew_s=int(os.environ.get("EMR_CLOCK_SKEW_S", "30")),
        public_base_url=base,
        public_base_url_configured=configured,
        if_match_required=frozenset(
            t.strip()
            for t in os.environ.get("EMR_IF_MATCH_REQUIRED_TENANTS", "").split(",")
            if t.strip()
        ),
    )
