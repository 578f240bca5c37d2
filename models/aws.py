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


def reset() -> None:
    with _lock:
        _clients.clear()
