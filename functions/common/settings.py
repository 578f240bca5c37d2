"""API settings, parsed once from the environment (set by infra/template.json
in AWS and by devstack/provision.py locally)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


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


@lru_cache(maxsize=1)
def api_settings() -> ApiSettings:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    pool = os.environ.get("EMR_USER_POOL_ID", "")
    issuer = (
        os.environ.get("EMR_JWT_ISSUER") or f"https://cognito-idp.{region}.amazonaws.com/{pool}"
    )
    return ApiSettings(
        region=region,
        user_pool_id=pool,
        app_client_id=os.environ.get("EMR_APP_CLIENT_ID", ""),
        issuer=issuer,
        jwks_url=os.environ.get("EMR_JWKS_URL") or f"{issuer}/.well-known/jwks.json",
        max_body_bytes=int(os.environ.get("EMR_MAX_BODY_BYTES", str(256 * 1024))),
        jwks_cache_s=int(os.environ.get("EMR_JWKS_CACHE_S", "3600")),
        clock_skew_s=int(os.environ.get("EMR_CLOCK_SKEW_S", "30")),
    )
