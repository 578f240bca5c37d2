"""The bench's own local stack: moto on a free port, provisioned from the
template, the environment exported before the app is imported, demo users, and
the API served over HTTP on another free port."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from devstack.moto_server import EmbeddedMotoServer

HOST = "127.0.0.1"
TENANT = "demo-clinic"
ROLE = "clinician"  # may create, read, search and update patients


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class BenchStack:
    moto: EmbeddedMotoServer
    local: Any  # devstack.provision.LocalStack
    app_module: ModuleType
    api: Any  # chalice.local.LocalDevServer
    api_port: int
    token: str

    def ops(self) -> Counter[str]:
        """Every AWS operation the moto server has seen so far, by name."""
        return self.moto.counter.snapshot()

    def token_for(self, role: str) -> str:
        """An ID token of the demo user of `role` in the bench's tenant (e.g. a
        prescriber for MedicationRequest writes, an admin for Practitioner writes)."""
        if role == ROLE:
            return self.token
        import boto3

        from devstack import seed

        cognito = boto3.client("cognito-idp")
        pool, client = self.local.user_pool_id, self.local.app_client_id
        return seed.id_token(cognito, pool, client, role, TENANT)

    def stop(self) -> None:
        self.api.shutdown()
        self.api.server.server_close()
        self.moto.stop()


def start() -> BenchStack:
    moto = EmbeddedMotoServer(HOST, free_port())
    moto.start()
    from devstack.provision import provision

    local = provision(moto.endpoint)
    os.environ.update(local.env())  # before app/models are imported: they read env at import
    import boto3

    from devstack import seed

    cognito = boto3.client("cognito-idp")
    seed.ensure_users(cognito, local.user_pool_id)
    token = seed.id_token(cognito, local.user_pool_id, local.app_client_id, ROLE, TENANT)
    app_module = _import_app()
    api, port = _serve(app_module)
    return BenchStack(moto, local, app_module, api, port, token)


def _import_app() -> ModuleType:
    import app as app_module

    _quiet_app_logs()
    return app_module


def _quiet_app_logs() -> None:
    """Keep the app's per-request JSON log line (its cost is part of the request)
    but send it to /dev/null so the bench output stays readable."""
    from functions.common.observability import logger

    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    for handler in logger.handlers:
        if hasattr(handler, "setStream"):
            handler.setStream(sink)


def _serve(app_module: ModuleType) -> tuple[Any, int]:
    from devstack.server import make_server

    port = free_port()
    server = make_server(app_module.app, HOST, port)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server, port


@contextlib.contextmanager
def quiet_stderr() -> Any:
    """The local API writes one access-log line per request to stderr."""
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stderr(sink):
        yield


@contextlib.contextmanager
def server_nodelay(stack: BenchStack) -> Any:
    """Diagnostic only: connections accepted meanwhile by the bench's own API server
    get TCP_NODELAY. The local server (Chalice's handler) sends a response's headers
    and its body in two writes; with Nagle's algorithm on, the body waits for the
    client's delayed ACK of the headers (~40 ms on Linux). Nothing is changed on
    disk or in any other server; the handler is restored afterwards."""
    server = stack.api.server
    original = server.RequestHandlerClass
    handler_cls = original.func

    class NoDelay(handler_cls):  # type: ignore[misc, valid-type]
        disable_nagle_algorithm = True

    server.RequestHandlerClass = functools.partial(NoDelay, **original.keywords)
    try:
        yield
    finally:
        server.RequestHandlerClass = original
