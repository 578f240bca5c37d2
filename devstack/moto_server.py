"""The embedded AWS endpoint of the local stack: a moto server on 127.0.0.1.

It is moto's own WSGI application served over real HTTP, wrapped in a small
middleware that counts requests by service and operation. The counters are how
the benchmark proves round-trip figures (a client cannot hide a call from the
server it is calling).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

DEFAULT_ENDPOINT = "http://127.0.0.1:5055"
ENDPOINT_ENV = "EMR_AWS_ENDPOINT"


class CallCounter:
    """Thread-safe counts of AWS operations seen by the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: DynamoDB_20120810.GetItem, TrentService.Decrypt, ...
        prefix, _, op = target.partition(".")
        service = {
            "DynamoDB_20120810": "dynamodb",
            "DynamoDBStreams_20120810": "dynamodbstreams",
            "TrentService": "kms",
            "AWSCognitoIdentityProviderService": "cognito-idp",
            "AWSEvents": "events",
            "AmazonSQS": "sqs",
        }.get(prefix, prefix)
        return f"{service}.{op}"
    return f"http.{environ.get('REQUEST_METHOD', '?')}"


class _Counting:
    def __init__(self, app: Callable[..., Iterable[bytes]], counter: CallCounter) -> None:
        self._app = app
        self._counter = counter

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self._counter.record(_operation(environ))
        return self._app(environ, start_response)


_backup_lock = threading.Lock()
_backups = threading.local()


def _one_backup_per_table() -> None:
    """moto 5.2.5's TransactWriteItems deep-copies the whole table once per item
    of the transaction (to roll back on failure), so a 20-item write on a table of
    N items copies it 20 times. Within one call every copy of the same table is
    identical; this makes them one. Only moto's dynamodb module is touched, and
    only while a TransactWriteItems call runs on this thread."""
    from moto.dynamodb import models

    with _backup_lock:
        if getattr(models.DynamoDBBackend.transact_write_items, "_one_backup", False):
            return
        real_copy = models.copy
        original = models.DynamoDBBackend.transact_write_items

        class _Copy:
            @staticmethod
            def deepcopy(obj: Any, memo: Any = None) -> Any:
                cache = getattr(_backups, "tables", None)
                if cache is None or not isinstance(obj, models.Table):
                    return real_copy.deepcopy(obj, memo)
                if id(obj) not in cache:
                    cache[id(obj)] = real_copy.deepcopy(obj)
                return cache[id(obj)]

        def transact_write_items(self: Any, transact_items: Any) -> None:
            _backups.tables = {}
            try:
                original(self, transact_items)
            finally:
                _backups.tables = None

        transact_write_items._one_backup = True  # type: ignore[attr-defined]
        models.copy = _Copy  # type: ignore[assignment]
        models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class EmbeddedMotoServer:
    """moto over HTTP on a loopback port, in a daemon thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.counter = CallCounter()
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _one_backup_per_table()
        app = _Counting(DomainDispatcherApplication(create_backend_app), self.counter)
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
