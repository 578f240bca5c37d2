"""boto3 clients, created lazily once per process and reused across invocations.

Endpoints follow botocore's own configuration (`AWS_ENDPOINT_URL` locally), so
the same code talks to moto on 127.0.0.1 and to AWS in Lambda.
"""

from __future__ import annotations

import threading
from typing import Any

from models.settings import storage_settings

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=20,
            )
            _clients[service] = boto3.session.Session().client(
                service, region_name=storage_settings().region, config=config
            )
        return _clients[service]


RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "ThrottlingError",
        "TransactionConflict",
        "InternalServerError",
        "ServiceUnavailable",
        "KMSInternalException",
        "LimitExceededException",
    }
)


def retryable(exc: BaseException) -> bool:
    """Throttling or a transient conflict on the AWS side: the client should retry."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _code_of(current) in RETRYABLE_CODES:
            return True
        reasons = getattr(current, "cancellation_reasons", None) or []
        if any(r is not None and r.code in RETRYABLE_CODES for r in reasons):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_code(exc: BaseException) -> str:
    """The AWS error code an exception carries (botocore's `response`), else its type
    name: what log lines name instead of an error's message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def _code_of(exc: BaseException) -> str | None:
    from botocore.exceptions import ClientError
    from pynamodb.exceptions import PynamoDBException

    if isinstance(exc, PynamoDBException):
        return exc.cause_response_code
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return None
