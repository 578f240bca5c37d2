"""The local API over real HTTP for third-party FHIR clients (fhirpy, fhirclient).

The API runs in a child process (`make run` serves it the same way: Chalice's
local gateway through devstack.server.make_server) on the session's moto stack
(the `stack` fixture's environment). A child process because the links the API
writes (Bundle `next`, Location, fullUrl) start with the local base URL, read
once per process from EMR_API_PORT: the child binds a free port first, then
exports it, so the links point at this server and the clients can follow them,
without changing any setting of the test process itself.

Every client request and the server's answer (method, path and query, status,
and the body of an error) is printed, so a failing test shows the exchange; the
bearer token is never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, Api

TENANT = "demo-clinic"
STARTUP_TIMEOUT_S = 60.0

# Run by the child process: bind a free port, export it as EMR_API_PORT (the API
# reads it on its first request), report it in the file named by argv[1], serve;
# exit if the test process goes away without stopping it.
SERVE = """
import os, sys, threading, time
import app
from devstack.server import make_server

parent = os.getppid()

def exit_with_parent():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()

local = make_server(app.app, "127.0.0.1", 0)
port = local.server.server_address[1]
os.environ["EMR_API_PORT"] = str(port)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(port))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
local.server.serve_forever()
"""


@dataclass(frozen=True)
class FhirServer:
    """A running local API: its FHIR base URL and demo users' bearer tokens."""

    base_url: str  # http://127.0.0.1:<port>/fhir/R4
    log: Path  # the child process's output (access log, tracebacks)
    api: Api

    def token(self, role: str = "clinician", tenant: str = TENANT) -> str:
        return self.api.token(role, tenant)

    def authorization(self, role: str = "clinician", tenant: str = TENANT) -> str:
        return f"Bearer {self.token(role, tenant)}"


def _get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def _wait_for_port(proc: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_file.exists():
            return int(port_file.read_text())
        if proc.poll() is not None:
            pytest.fail(f"API server exited with {proc.returncode}:\n{log.read_text('utf-8')}")
        time.sleep(0.05)
    pytest.fail(f"API server not listening after {STARTUP_TIMEOUT_S} s:\n{log.read_text('utf-8')}")


def _wait_until_serving(base_url: str, log: Path) -> None:
    """Serving, and writing links that start with `base_url` (the CapabilityStatement's
    implementation.url is the base of every link the API writes)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            status, body = _get_json(f"{base_url}/metadata")
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{base_url}/metadata not answering:\n{log.read_text('utf-8')}")
            time.sleep(0.1)
    assert status == 200, body
    assert body["implementation"]["url"] == base_url, body["implementation"]


@pytest.fixture(scope="session")
def fhir_server(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    """The local API on http://127.0.0.1:<free port>, on the same stack (and so the
    same demo users and data) as the rest of the session."""
    folder = tmp_path_factory.mktemp("fhir-server")
    port_file, log = folder / "port", folder / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("EMR_API_PORT", "EMR_PUBLIC_BASE_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(port_file)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_for_port(proc, port_file, log)
        base_url = f"http://127.0.0.1:{port}/fhir/R4"
        _wait_until_serving(base_url, log)
        yield FhirServer(base_url=base_url, log=log, api=api)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def print_server_errors(fhir_server: FhirServer) -> Iterator[None]:
    """After each test, the server's error log records written during it (the last
    line of each traceback), shown by pytest when the test fails."""
    start = fhir_server.log.stat().st_size
    yield
    with open(fhir_server.log, "rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    for line in lines:
        if '"level":"ERROR"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            print(f"server: {line[:500]}")
            continue
        where = f"{record.get('route', '')} {record.get('message', '')}"
        last = (record.get("exception") or "").strip().splitlines()[-1:]
        print(f"server error: {where}: {' '.join(last)}")


def print_exchange(response: Any, *args: Any, **kwargs: Any) -> None:
    """A `requests` response hook: one line per exchange, plus the body of an
    error (an OperationOutcome). Shown by pytest when a test fails."""
    request = response.request
    url = urlsplit(request.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    print(f"{request.method} {target} -> {response.status_code}")
    if response.status_code >= 400:
        print(f"    {response.text[:2000]}")
