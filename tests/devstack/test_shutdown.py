"""`make run` stopped the way a terminal or a supervisor stops it: SIGTERM to its
whole process group, while clients are still sending requests and some hang up
before their answer. It must be gone within 5 seconds and print no traceback."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.devstack.test_seed_and_import import ROOT, _clean_env, _free_port, _token, http


def _wait_until_answering(proc: subprocess.Popen[bytes], api: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if http(f"{api}/fhir/R4/metadata")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"run not answering after 90 s:\n{log.read_text(errors='replace')}")


def _keep_calling(url: str, token: str, stop: threading.Event) -> None:
    """Requests in flight while the stack stops (their errors are expected here)."""
    while not stop.is_set():
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                resp.read()
        except Exception:  # noqa: S112 - the server going away is the point
            continue


def _keep_hanging_up(port: int, token: str, stop: threading.Event) -> None:
    """Clients that go away before their answer (a reset connection), as clients of
    a stopping server do."""
    request = (
        f"GET /fhir/R4/Patient?family=bea HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(request)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        time.sleep(0.02)


def test_sigterm_to_the_process_group_stops_run_within_5_s_without_a_traceback(tmp_path):
    aws_port, api_port = _free_port(), _free_port()
    while api_port == aws_port:
        api_port = _free_port()
    env = _clean_env(
        EMR_AWS_ENDPOINT=f"http://127.0.0.1:{aws_port}",
        EMR_API_PORT=str(api_port),
        EMR_STACK_FILE=str(tmp_path / "stack.json"),
    )
    api = f"http://127.0.0.1:{api_port}"
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stop = threading.Event()
    callers: list[threading.Thread] = []
    try:
        _wait_until_answering(proc, api, log)
        token = _token(env)
        for url, bearer in [
            (f"{api}/fhir/R4/Patient?family=bea", token),  # a Query and an audit PutItem each
            (f"{api}/fhir/R4/Patient?family=lef", token),
            (f"{api}/fhir/R4/Patient/x", ""),  # refused before any AWS call
        ]:
            callers.append(threading.Thread(target=_keep_calling, args=(url, bearer, stop)))
        args = (int(env["EMR_API_PORT"]), token, stop)
        callers.append(threading.Thread(target=_keep_hanging_up, args=args))
        for caller in callers:
            caller.start()
        time.sleep(0.5)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 5 s after SIGTERM:\n{log.read_text(errors='replace')}")
        took = time.monotonic() - started
    finally:
        stop.set()
        for caller in callers:
            if caller.is_alive():
                caller.join(timeout=5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text(errors="replace")
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert "Exception" not in output, output
    assert not (tmp_path / "stack.json").exists()
    print(f"stopped {took:.2f} s after SIGTERM, exit code {code}")
