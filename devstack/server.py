"""The API on http://127.0.0.1:8000, served by Chalice's local gateway.

Two differences from plain `chalice local`, both to match the deployed stack:
an unknown route answers 404 with a FHIR OperationOutcome (API Gateway does the
same through the GatewayResponse in infra/template.json), and access-log lines
leave out query strings, which can hold search values (PHI).

The server also takes bursts of parallel clients: its listen backlog is
`LISTEN_BACKLOG` (Chalice's server keeps the standard library's 5, and the
kernel resets connections beyond it), and a client that goes away mid-request
is one log line, not a traceback.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LocalDevServer,
    LocalGatewayException,
    ThreadedHTTPServer,
)

LISTEN_BACKLOG = 1024

UNAVAILABLE = json.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "transient", "diagnostics": "Server stopping"}],
    }
).encode()

NOT_FOUND = json.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Unknown route"}],
    }
).encode()


class EmrRequestHandler(ChaliceRequestHandler):
    # Chalice writes headers and body separately; without this the body waits
    # for the client's delayed ACK (~40 ms a response on Linux).
    disable_nagle_algorithm = True

    def _send_error_response(self, error: LocalGatewayException) -> None:
        # An unknown route: 403 "Missing Authentication Token", or, when the request
        # has an Authorization header, API Gateway's IncompleteSignature message
        # (which echoes the header: the token must not be sent back either).
        body = error.body or b""
        unknown_route = b"Missing Authentication Token" in body or body.startswith(
            b'{"message": "Authorization header requires '
        )
        if error.CODE == 403 and unknown_route:
            self._send_http_response(404, {"Content-Type": "application/fhir+json"}, NOT_FOUND)
            return
        super()._send_error_response(error)

    def _handle_counted(self) -> None:
        """Chalice's handling, counted so that a stopping server can wait for the
        requests in flight; refused with 503 once the server is stopping."""
        server = self.server
        if not isinstance(server, EmrHTTPServer):
            self._generic_handle()
            return
        if not server.begin_request():
            self.close_connection = True
            headers = {"Content-Type": "application/fhir+json", "Connection": "close"}
            self._send_http_response(503, headers, UNAVAILABLE)
            return
        try:
            self._generic_handle()
        finally:
            server.end_request()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _handle_counted

    def log_message(self, format: str, *args: Any) -> None:
        path = self.path.split("?", 1)[0]
        status = args[1] if len(args) > 1 else "-"
        sys.stderr.write(f"{self.address_string()} {self.command} {path} {status}\n")


class EmrHTTPServer(ThreadedHTTPServer):
    """Chalice's threaded server with a deep listen backlog, that can stop
    accepting requests and wait for those in flight."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = threading.Condition()
        self._in_flight = 0
        self._stopping = False

    def begin_request(self) -> bool:
        with self._requests:
            if self._stopping:
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._requests:
            self._in_flight -= 1
            self._requests.notify_all()

    def stop_accepting(self, timeout_s: float = 2.0) -> bool:
        """Close the listening socket, answer 503 to requests on connections still
        open, and wait up to `timeout_s` for the requests in flight to finish."""
        with self._requests:
            self._stopping = True
        self.server_close()
        with self._requests:
            return self._requests.wait_for(lambda: self._in_flight == 0, timeout_s)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):  # the client went away
            sys.stderr.write(f"{client_address[0]} connection closed: {type(error).__name__}\n")
            return
        super().handle_error(request, client_address)


def make_server(app: Any, host: str, port: int) -> LocalDevServer:
    from chalice.local import CustomLocalChalice, LocalChalice

    if not isinstance(app, CustomLocalChalice):  # once per app (tests may start two servers)
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    config = Config.create(
        chalice_stage="local",
        app_name="emr",
        chalice_app=app,
        lambda_timeout=30,
        lambda_memory_size=1024,
    )
    return LocalDevServer(
        app, config, host, port, handler_cls=EmrRequestHandler, server_cls=EmrHTTPServer
    )
