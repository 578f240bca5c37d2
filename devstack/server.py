"""The API on http://127.0.0.1:8000, served by Chalice's local gateway.

Two differences from plain `chalice local`, both to match the deployed stack:
an unknown route answers 404 with a FHIR OperationOutcome (API Gateway does the
same through the GatewayResponse in infra/template.json), and access-log lines
leave out query strings, which can hold search values (PHI).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGatewayException

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
        if error.CODE == 403 and b"Missing Authentication Token" in (error.body or b""):
            self._send_http_response(404, {"Content-Type": "application/fhir+json"}, NOT_FOUND)
            return
        super()._send_error_response(error)

    def log_message(self, format: str, *args: Any) -> None:
        path = self.path.split("?", 1)[0]
        status = args[1] if len(args) > 1 else "-"
        sys.stderr.write(f"{self.address_string()} {self.command} {path} {status}\n")


def make_server(app: Any, host: str, port: int) -> LocalDevServer:
    from chalice.local import CustomLocalChalice, LocalChalice

    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    config = Config.create(
        chalice_stage="local",
        app_name="emr",
        chalice_app=app,
        lambda_timeout=30,
        lambda_memory_size=1024,
    )
    return LocalDevServer(app, config, host, port, handler_cls=EmrRequestHandler)
