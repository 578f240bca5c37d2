"""Local stack commands: `python -m devstack run|token|import|dlq|redrive|package`.

`run` starts everything in one process: the moto server (AWS APIs over HTTP on
127.0.0.1), resources provisioned from infra/template.json, demo users and
patients, the stream pipeline, the event consumers (docs/pipelines.md), and the
API on http://127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from devstack import stackfile
from devstack.moto_server import DEFAULT_ENDPOINT, ENDPOINT_ENV, EmbeddedMotoServer

API_HOST = "127.0.0.1"
API_PORT_ENV = "EMR_API_PORT"


def _moto_running(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def start_aws(endpoint: str) -> EmbeddedMotoServer | None:
    """Reuse a moto server already listening at `endpoint`, else start one there."""
    if _moto_running(endpoint):
        print(f"Using the moto server already running at {endpoint}")
        return None
    url = urlparse(endpoint)
    if not _port_free(url.hostname or "127.0.0.1", url.port or 80):
        raise SystemExit(
            f"{endpoint} is in use by something that is not moto; "
            f"set {ENDPOINT_ENV} to another http://127.0.0.1:<port>."
        )
    server = EmbeddedMotoServer(url.hostname or "127.0.0.1", url.port or 5055)
    server.start()
    print(f"AWS APIs (moto) on {endpoint}")
    return server


def bring_up(endpoint: str) -> Any:
    """Provision, export the environment, seed users and patients."""
    import boto3

    from devstack.provision import provision

    local = provision(endpoint)
    os.environ.update(local.env())
    from devstack import seed

    cognito = boto3.client("cognito-idp")
    users = seed.ensure_users(cognito, local.user_pool_id)
    practitioners = seed.seed_practitioners()
    reports = seed.seed_patients()
    print(
        f"Demo users: {len(users)} created ({len(seed.TENANTS) * len(seed.ROLES)} in all); "
        f"password in README; their Practitioners created: {practitioners}"
    )
    for tenant, rep in reports.items():
        print(f"Demo data in {tenant}: {rep.summary()}")
        for refusal in rep.refused:
            print(f"  not loaded: {refusal}")
    from devstack.demo_charting import seed_charting

    print(seed_charting(cognito, local.user_pool_id, local.app_client_id))
    return local


class _Stop:
    """A stop request (Ctrl-C or SIGTERM), and whether the stack is serving yet."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.serving = False


_STOP = _Stop()


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM both stop the stack cleanly, even when a parent
    shell started us with SIGINT ignored (as non-interactive shells do for `&`).

    While starting, a signal interrupts whatever runs (KeyboardInterrupt). Once the
    API is serving, it only asks the main thread to stop the servers in order: an
    exception raised inside the accept loop could close a connection a request
    thread is about to use."""

    def stop(signum: int, frame: Any) -> None:
        # Once: a second signal (a terminal sends SIGINT to the group, a supervisor
        # SIGTERM, `make` passes them on) must not interrupt the cleanup itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _STOP.requested.set()
        if not _STOP.serving:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def cmd_run(_: argparse.Namespace) -> None:
    _stop_on_signals()
    try:
        _run()
    except KeyboardInterrupt:  # stopped while starting: nothing is serving yet
        print("\nStopped.")
    # Everything is stopped and the stack file removed. Leave now rather than
    # through interpreter teardown, which waits on (and may print from) daemon
    # threads of connections that were still open.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run() -> None:
    endpoint = os.environ.get(ENDPOINT_ENV, DEFAULT_ENDPOINT)
    port = int(os.environ.get(API_PORT_ENV, "8000"))
    if not _port_free(API_HOST, port):
        raise SystemExit(f"Port {port} is in use; stop the other process or set {API_PORT_ENV}.")
    moto = start_aws(endpoint)
    try:
        local = bring_up(endpoint)
        _serve(local, port)
    finally:
        if moto is not None:
            moto.stop()


def _serve(local: Any, port: int) -> None:
    """The stream runner and the API, until Ctrl-C or SIGTERM."""
    import boto3

    import app as app_module
    from devstack.runner import StreamRunner
    from devstack.server import make_server

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app_module.stream_publisher(event, None)
        return result

    # as the deployed mapping: batches of up to 1,000 records (infra/template.json)
    runner = StreamRunner(
        boto3.client("dynamodbstreams"), local.stream_arn, handler, batch_size=1000
    )
    pipeline = threading.Thread(target=runner.run_forever, name="stream-runner", daemon=True)
    pipeline.start()
    workers = _start_consumers(app_module, local)
    server = make_server(app_module.app, API_HOST, port).server
    api = threading.Thread(target=server.serve_forever, args=(0.1,), name="api", daemon=True)
    try:
        stackfile.write({**local.env(), "api": f"http://{API_HOST}:{port}"})
        api.start()
        _STOP.serving = True
        print(f"API on http://{API_HOST}:{port}  (FHIR base http://{API_HOST}:{port}/fhir/R4)")
        print("Token: make token ROLE=clinician TENANT=demo-clinic   |   Ctrl-C stops everything")
        while not _STOP.requested.wait(0.5):
            pass
        print("\nStopping.")
    finally:
        stackfile.remove()
        if api.is_alive():
            server.shutdown()  # the accept loop ends between two connections
        server.stop_accepting(timeout_s=2.0)  # requests in flight still reach moto
        runner.stop()
        for worker in workers:
            worker.stop()
        pipeline.join(timeout=1.0)


def _start_consumers(app_module: Any, local: Any) -> list[Any]:
    """One queue runner per consumer, calling the Chalice-registered consumer function
    as Lambda does; and the alerts escalation schedule, every minute locally."""
    import boto3

    from devstack.dlq import CONSUMERS, env_name, queue_url
    from devstack.queues import LambdaContext, Periodic, QueueRunner, scheduled_event

    sqs = boto3.client("sqs")
    workers: list[Any] = []
    for queue_id, dlq_id, function in CONSUMERS.values():
        for logical_id in (queue_id, dlq_id):  # the consumers read their DLQ's URL from env
            os.environ.setdefault(env_name(logical_id), local.queue_urls[logical_id])
        url = queue_url(sqs, queue_id)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        handler = getattr(app_module, function)
        queue_arn = arn["Attributes"]["QueueArn"]
        workers.append(QueueRunner(sqs, url, queue_arn, handler, function_name=function))
    escalation = app_module.alerts_escalation
    workers.append(
        Periodic(
            "alerts_escalation",
            lambda: escalation(scheduled_event(), LambdaContext("alerts_escalation", 60.0)),
            every_s=60.0,
        )
    )
    for worker in workers:
        name = getattr(worker, "name", None) or worker.queue_arn.rsplit(":", 1)[-1]
        threading.Thread(target=worker.run_forever, name=f"runner-{name}", daemon=True).start()
    print(f"Event consumers: {', '.join(CONSUMERS)} (queue runners); alerts escalation every 60 s")
    return workers


def cmd_token(args: argparse.Namespace) -> None:
    import boto3

    from devstack import seed

    env = stackfile.read()
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    if args.role not in seed.ROLES or args.tenant not in seed.TENANTS:
        raise SystemExit(
            f"ROLE is one of {', '.join(seed.ROLES)}; TENANT one of {', '.join(seed.TENANTS)}"
        )
    cognito = boto3.client("cognito-idp")
    print(
        seed.id_token(
            cognito, env["EMR_USER_POOL_ID"], env["EMR_APP_CLIENT_ID"], args.role, args.tenant
        )
    )


def cmd_import(args: argparse.Namespace) -> None:
    if not args.dir:
        raise SystemExit("Usage: make import DIR=<folder of FHIR bundles> [TENANT=demo-clinic]")
    env = stackfile.read()
    os.environ.update({k: v for k, v in env.items() if k != "api"})
    from devstack.importer import LOADED, import_folder

    types = tuple(t.strip() for t in args.types.split(",") if t.strip()) if args.types else LOADED
    report = import_folder(Path(args.dir), args.tenant, types=types)
    print(report.summary())
    for refusal in report.refused:
        print(f"  not loaded: {refusal}")


def _stack_env() -> dict[str, str]:
    """The running stack's environment (AWS endpoint, table, queue URLs)."""
    env = {k: str(v) for k, v in stackfile.read().items() if k != "api"}
    os.environ.update(env)
    return env


def cmd_dlq(_: argparse.Namespace) -> None:
    import boto3

    from devstack.dlq import format_rows, list_all

    env = _stack_env()
    print(format_rows(list_all(boto3.client("sqs"), env)))


def cmd_redrive(args: argparse.Namespace) -> None:
    import boto3

    from devstack.dlq import CONSUMERS, redrive_consumer

    if args.queue not in CONSUMERS:
        raise SystemExit(f"Usage: make redrive QUEUE=<{'|'.join(CONSUMERS)}>")
    env = _stack_env()
    moved = redrive_consumer(boto3.client("sqs"), args.queue, env)
    print(f"Redrove {moved} message(s) from the {args.queue} DLQ to its queue.")


def cmd_audit_verify(args: argparse.Namespace) -> None:
    """Recompute a tenant's audit ledger on the running stack; exit 1 when it is broken."""
    import json

    _stack_env()
    from functions.audit.verify import verify

    report = verify(args.tenant)
    print(json.dumps(report.to_json(), indent=2))
    if not report.verified:
        raise SystemExit(1)


def cmd_package(args: argparse.Namespace) -> None:
    from devstack.package import package

    package(Path(args.out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").set_defaults(func=cmd_run)
    token = sub.add_parser("token")
    token.add_argument("--role", default="clinician")
    token.add_argument("--tenant", default="demo-clinic")
    token.set_defaults(func=cmd_token)
    imp = sub.add_parser("import")
    imp.add_argument("--dir", default="")
    imp.add_argument("--tenant", default="demo-clinic")
    imp.add_argument("--types", default="", help="comma-separated; default: every served type")
    imp.set_defaults(func=cmd_import)
    sub.add_parser("dlq", help="list dead letters with their reason").set_defaults(func=cmd_dlq)
    red = sub.add_parser("redrive", help="move a consumer's dead letters back to its queue")
    red.add_argument("--queue", default="")
    red.set_defaults(func=cmd_redrive)
    ver = sub.add_parser("audit-verify", help="recompute a tenant's audit ledger")
    ver.add_argument("--tenant", default="demo-clinic")
    ver.set_defaults(func=cmd_audit_verify)
    pkg = sub.add_parser("package")
    pkg.add_argument("--out", default="dist")
    pkg.set_defaults(func=cmd_package)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
