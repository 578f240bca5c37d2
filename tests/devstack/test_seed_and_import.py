"""The local stack commands as a developer runs them: seeding (`bring_up`), the
importer behind `make import`, and `python -m devstack run` / `token` end to end
over real HTTP. Commands run in subprocesses: their environment and module-level
caches (settings, clients, table name) stay out of this test process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
# devstack.seed is imported only inside tests: importing it imports the models,
# which read the table settings once, before the session stack has exported them.
DEMO_DIR = ROOT / "demo" / "synthea"
SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea"


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the session stack's AWS_*/EMR_* variables
    (a developer's shell has none), plus what the Makefile exports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMR_"))}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _patient_of(bundle_path: Path) -> dict[str, Any]:
    bundle = json.loads(bundle_path.read_text())
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    return patient  # type: ignore[no-any-return]


def _families(patient: dict[str, Any]) -> list[str]:
    return [n["family"] for n in patient.get("name") or [] if n.get("family")]


DEMO_PATIENTS = [_patient_of(p) for p in sorted(DEMO_DIR.glob("*.json"))]


# --- bring_up twice --------------------------------------------------------------------

BRING_UP_TWICE = textwrap.dedent(
    """
    import contextlib, io, json
    import boto3
    from devstack.moto_server import EmbeddedMotoServer
    from devstack.__main__ import bring_up

    server = EmbeddedMotoServer()
    server.start()
    outputs = []
    for _ in range(2):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            local = bring_up(server.endpoint)
        outputs.append(buf.getvalue())

    from models import keys

    users = {}
    cognito = boto3.client("cognito-idp")
    for page in cognito.get_paginator("list_users").paginate(UserPoolId=local.user_pool_id):
        for user in page["Users"]:
            attrs = {a["Name"]: a["Value"] for a in user["Attributes"]}
            users.setdefault(attrs.get("custom:tenant"), []).append(user["Username"])
    patients = {}
    ddb = boto3.client("dynamodb")
    for tenant in ("demo-clinic", "other-clinic"):
        pages = ddb.get_paginator("query").paginate(
            TableName=local.table_name, IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": keys.type_list_pk(tenant, "Patient")}},
        )
        patients[tenant] = sum(page["Count"] for page in pages)
    pools = len(cognito.list_user_pools(MaxResults=60)["UserPools"])
    server.stop()
    print(json.dumps({"outputs": outputs, "users": users, "patients": patients, "pools": pools}))
    """
)


def _report_counts(output: str) -> dict[str, tuple[int, int]]:
    return {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(
            r"Demo data in (\S+): \d+ bundles: (\d+) patients created, (\d+) already there", output
        )
    }


def test_bring_up_twice_on_one_moto_server_creates_no_duplicates():
    done = subprocess.run(
        [sys.executable, "-c", BRING_UP_TWICE],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    first, second = result["outputs"]
    from devstack.seed import OTHER_CLINIC_BUNDLES, ROLES, TENANTS

    everyone = len(TENANTS) * len(ROLES)
    demo = len(DEMO_PATIENTS)
    assert demo == 5

    assert f"Demo users: {everyone} created ({everyone} in all)" in first
    assert _report_counts(first) == {"demo-clinic": (demo, 0), "other-clinic": (2, 0)}
    assert "not loaded:" not in first, first  # every demo resource of a served type loads
    assert "'Encounter': 137" in first and "'Observation': 535" in first, first
    assert f"Demo users: 0 created ({everyone} in all)" in second
    assert _report_counts(second) == {"demo-clinic": (0, demo), "other-clinic": (0, 2)}
    assert "demo charting: Patient/" in first, first
    assert "demo charting already in place" in second, second

    assert {tenant: len(names) for tenant, names in result["users"].items()} == {
        tenant: len(ROLES) for tenant in TENANTS
    }
    assert result["patients"] == {"demo-clinic": demo, "other-clinic": OTHER_CLINIC_BUNDLES}
    assert result["pools"] == 1


# --- make import ---------------------------------------------------------------------------


def _import_cli(folder: Path, tenant: str, stack_file: Path, types: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "import", "--dir", str(folder), "--tenant", tenant]
        + (["--types", types] if types else []),
        cwd=ROOT,
        env=_clean_env(EMR_STACK_FILE=str(stack_file)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _search(tenant: str, type_: str = "Patient", **params: str) -> list[dict[str, Any]]:
    from functions.common.caller import system_caller
    from functions.engine import registry, service
    from models.clock import new_id

    caller = system_caller(tenant, "test", "test", new_id(), f"{type_.lower()}.search")
    found = service.search_resources(
        caller, registry.require(type_), {k: [v] for k, v in params.items()}
    )
    return [s.resource for s in found.found if s.resource]


def test_make_import_loads_every_synthea_bundle_once_and_makes_it_findable(
    stack,
    shared_data,
    tmp_path,  # type: ignore[no-untyped-def]
):
    folder = shared_data / "synthea"
    patients = [_patient_of(p) for p in sorted(folder.glob("*.json"))]
    assert len(patients) == 28
    tenant = "import-test-" + uuid.uuid4().hex[:8]
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps({**stack.env(), "api": "http://127.0.0.1:1"}))

    started = time.monotonic()
    first = _import_cli(folder, tenant, stack_file, types="Patient")
    took = time.monotonic() - started
    assert "28 bundles: 28 patients created, 0 already there" in first, first
    print(f"import of 28 Synthea bundles: {took:.1f} s")

    found: set[str] = set()
    for patient in patients:
        (ident,) = [i for i in patient["identifier"] if i.get("system") == SYNTHEA_SYSTEM]
        hits = _search(tenant, identifier=f"{SYNTHEA_SYSTEM}|{ident['value']}")
        assert len(hits) == 1, ident["value"]
        assert hits[0]["birthDate"] == patient["birthDate"]
        assert _families(hits[0]) == _families(patient)
        found.add(hits[0]["id"])
        letters = "".join(c for c in _families(patient)[0] if c.isalpha())[:3]
        assert hits[0]["id"] in {r["id"] for r in _search(tenant, family=letters, _count="99")}
    assert len(found) == 28
    assert {r["id"] for r in _search(tenant, _count="99")} == found

    again = _import_cli(folder, tenant, stack_file)
    assert "28 bundles: 0 patients created, 28 already there" in again, again
    assert {r["id"] for r in _search(tenant, _count="99")} == found


def test_import_loads_the_clinical_resources_with_references_rewritten(
    stack,
    shared_data,
    tmp_path,  # type: ignore[no-untyped-def]
):
    """Three Synthea bundles (one with allergies), every served type, in process."""
    from devstack.importer import LOADED, import_folder

    chosen = []
    for path in sorted((shared_data / "synthea").glob("*.json")):
        kinds = {e["resource"]["resourceType"] for e in json.loads(path.read_text())["entry"]}
        if "AllergyIntolerance" in kinds or len(chosen) < 2:
            chosen.append(path)
        if len(chosen) == 3 and any("AllergyIntolerance" in p.read_text() for p in chosen):
            break
    for path in chosen:
        (tmp_path / path.name).symlink_to(path)
    tenant = "import-full-" + uuid.uuid4().hex[:8]
    report = import_folder(tmp_path, tenant)
    expected: Counter[str] = Counter()
    for path in chosen:
        for e in json.loads(path.read_text())["entry"]:
            expected[e["resource"]["resourceType"]] += 1
    refused = Counter(line.split(" ")[0] for line in report.refused)
    for kind in LOADED:
        if kind == "Practitioner":
            continue  # the same clinician in two bundles is one Practitioner
        assert report.loaded[kind] + refused[kind] == expected[kind], (kind, report.refused)
    assert report.loaded["AllergyIntolerance"] >= 1
    assert not report.refused, report.refused
    assert report.skipped_types["Claim"] == expected["Claim"]

    for pid in report.created:
        encounters = _search(tenant, "Encounter", patient=pid, _count="99", _total="accurate")
        assert encounters and all(e["subject"]["reference"] == f"Patient/{pid}" for e in encounters)
        assert all(e["id"].startswith(f"{pid}.") for e in encounters)
        doctors = {
            p["individual"]["reference"]
            for e in encounters
            for p in e.get("participant", [])
            if "reference" in p.get("individual", {})
        }
        assert doctors and all(d.startswith("Practitioner/") for d in doctors)
        conditions = _search(tenant, "Condition", patient=pid, _count="99")
        known = {f"Encounter/{e['id']}" for e in encounters}
        assert all(c["encounter"]["reference"] in known for c in conditions if "encounter" in c)
        assert not any("urn:uuid" in json.dumps(r) for r in encounters + conditions)


# --- python -m devstack run ------------------------------------------------------------------


@dataclass
class RunProcess:
    """One `python -m devstack run`, its output captured to files."""

    env: dict[str, str]
    out_dir: Path
    label: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['EMR_API_PORT']}"

    @property
    def stack_file(self) -> Path:
        return Path(self.env["EMR_STACK_FILE"])

    def start(self, timeout: float = 90.0) -> None:
        stdout = open(self.out_dir / f"{self.label}.out", "wb")  # noqa: SIM115
        stderr = open(self.out_dir / f"{self.label}.err", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=stdout,
            stderr=stderr,
            # a terminal's Ctrl-C: SIGINT must not be inherited as ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        stdout.close()
        stderr.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.label} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if http(f"{self.api}/fhir/R4/metadata")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        pytest.fail(f"{self.label} not answering after {timeout} s:\n{self.output()}")

    def interrupt(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{self.label} still running {timeout} s after SIGINT")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stdout(self) -> str:
        return (self.out_dir / f"{self.label}.out").read_text(errors="replace")

    def stderr(self) -> str:
        return (self.out_dir / f"{self.label}.err").read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"


def http(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/fhir+json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _search_http(run: RunProcess, token: str, **params: str) -> list[dict[str, Any]]:
    status, body = http(f"{run.api}/fhir/R4/Patient?{urllib.parse.urlencode(params)}", token)
    assert status == 200, body
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return [e["resource"] for e in body["entry"]]


def _token(env: dict[str, str], role: str = "clinician", tenant: str = "demo-clinic") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "token", "--role", role, "--tenant", tenant],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.count(".") == 2, done.stdout
    return token


REPO_STACK_FILE = ROOT / ".local" / "stack.json"


def _repo_stack_file_state() -> tuple[bool, float | None, bytes | None]:
    if not REPO_STACK_FILE.exists():
        return False, None, None
    return True, REPO_STACK_FILE.stat().st_mtime, REPO_STACK_FILE.read_bytes()


@pytest.fixture(scope="module")
def run_env(tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("devstack-run")
    aws_port, api_port = _free_port(), _free_port()
    while api_port == aws_port:
        api_port = _free_port()
    return _clean_env(
        EMR_AWS_ENDPOINT=f"http://127.0.0.1:{aws_port}",
        EMR_API_PORT=str(api_port),
        EMR_STACK_FILE=str(folder / "stack.json"),
    )


@pytest.fixture(scope="module")
def repo_stack_file_before() -> tuple[bool, float | None, bytes | None]:
    return _repo_stack_file_state()


@pytest.fixture(scope="module")
def running(run_env, repo_stack_file_before, tmp_path_factory) -> Iterator[RunProcess]:  # type: ignore[no-untyped-def]
    run = RunProcess(run_env, tmp_path_factory.mktemp("devstack-logs"), "run-1")
    try:
        run.start()
        yield run
    finally:
        run.kill()


def test_run_serves_the_api_with_a_token_from_the_token_command(running):  # type: ignore[no-untyped-def]
    info = json.loads(running.stack_file.read_text())
    assert info["api"] == running.api
    assert info["AWS_ENDPOINT_URL"] == running.env["EMR_AWS_ENDPOINT"]

    token = _token(running.env)
    found = _search_http(running, token, name="bea")
    names = [(n.get("given"), n.get("family")) for r in found for n in r["name"]]
    assert (["Milan"], "Beatty") in names
    assert all("Beatty" in _families(r) for r in found)

    status, body = http(f"{running.api}/fhir/R4/Patient?name=bea")
    assert status == 401, body


def test_run_seeds_a_demo_chart_with_notes_scores_a_flag_and_a_safety_plan(running):  # type: ignore[no-untyped-def]
    token = _token(running.env, "supervisor")
    found = _search_http(running, token, identifier=_patient_identifier_of_first_demo())
    assert len(found) == 1
    status, chart = http(f"{running.api}/fhir/R4/Patient/{found[0]['id']}/$chart", token)
    assert status == 200, chart
    notes = chart["notes"]
    assert len(notes) == 3  # signed, its addendum, one awaiting co-signature; drafts have none
    assert sum(1 for n in notes if n.get("awaitingCosign")) == 1
    assert [s["total"] for s in chart["scores"]["phq-9"]["recent"]] == [3, 7, 14, 16]
    assert chart["scores"]["gad-7"]["baseline"]["total"] == 15
    assert len(chart["flags"]) == 1  # PHQ-9 item 9 above 0 once
    assert [p["kind"] for p in chart["plans"]] == ["safety-plan"]
    assert "sertraline" in {m.get("ingredient") for m in chart["medications"]}
    status, unsigned = http(f"{running.api}/notes/cosign-queue", token)
    assert status == 200 and len(unsigned["entry"]) == 1


def _patient_identifier_of_first_demo() -> str:
    bundle = json.loads(sorted(DEMO_DIR.glob("*.json"))[0].read_text())
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")  # fmt: skip
    ident = patient["identifier"][0]
    return f"{ident['system']}|{ident['value']}"


def test_run_answers_an_unknown_route_with_a_404_operation_outcome(running):  # type: ignore[no-untyped-def]
    status, body = http(f"{running.api}/nope")
    assert status == 404
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"


def test_run_logs_no_search_values(running):  # type: ignore[no-untyped-def]
    token = _token(running.env)
    for patient in DEMO_PATIENTS:
        for family in _families(patient):
            assert _search_http(running, token, family=family), family
    assert http(f"{running.api}/nope?family=Beatty&name=Leffler")[0] == 404

    err, out = running.stderr(), running.stdout()
    assert re.search(r"GET /fhir/R4/Patient 200\b", err), err  # the request log is captured
    assert "GET /nope 404" in err, err
    for patient in DEMO_PATIENTS:
        for family in _families(patient):
            for value in {family, family.replace("'", "")}:
                assert value.lower() not in err.lower(), f"{value} in stderr"
                assert value.lower() not in out.lower(), f"{value} in stdout"


def test_ctrl_c_stops_run_cleanly_and_it_comes_back_on_the_same_ports(
    running,
    run_env,
    repo_stack_file_before,
    tmp_path_factory,  # type: ignore[no-untyped-def]
):
    assert running.stack_file.exists()
    code = running.interrupt(timeout=15)
    assert code in (0, -signal.SIGINT, 130), running.output()
    assert "Traceback" not in running.stderr(), running.stderr()
    assert "Traceback" not in running.stdout(), running.stdout()
    assert not running.stack_file.exists()
    assert _repo_stack_file_state() == repo_stack_file_before

    again = RunProcess(run_env, tmp_path_factory.mktemp("devstack-logs"), "run-2")
    try:
        again.start()
        token = _token(again.env)
        everyone = _search_http(again, token, _count="99")
        assert len(everyone) == len(DEMO_PATIENTS) == 5
        for patient in DEMO_PATIENTS:
            family = _families(patient)[0]
            hits = _search_http(again, token, family=family)
            assert [_families(h) for h in hits] == [_families(patient)], family
        code = again.interrupt(timeout=15)
        assert code in (0, -signal.SIGINT, 130), again.output()
        assert "Traceback" not in again.stderr(), again.stderr()
        assert not again.stack_file.exists()
        for patient in DEMO_PATIENTS:
            for family in _families(patient):
                assert family.lower() not in (again.stdout() + again.stderr()).lower()
    finally:
        again.kill()
    assert _repo_stack_file_state() == repo_stack_file_before
