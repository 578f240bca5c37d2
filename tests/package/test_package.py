"""The deployable artifact: `chalice package` output, checked as AWS would see it.

* cfn-lint reports no error on the packaged SAM template;
* the template carries the merged infra (table, keys, user pool), the stream
  event source of infra/template.json and no `dynamodb:*`/`kms:*` grant;
* `deployment.zip`, unpacked alone and run by a fresh interpreter that has only
  what the Lambda runtime has (boto3 and its dependencies), imports the app from
  the zip, answers API Gateway events (public and authenticated) against the
  test's moto server, and resolves every handler named in the template.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.package import PackageResult, package
from devstack.provision import LocalStack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INFRA_RESOURCES = (
    "EmrTable",
    "EmrTableKey",
    "EmrDataKey",
    "EmrUserPool",
    "EmrUserPoolClient",
    "EmrEventBus",
    "EmrEventArchive",
    "EmrAlertsQueue",
    "EmrLedgerBucket",
    "EmrTrail",
)
FROM_ZIP = (
    "app",
    "functions",
    "models",
    "events",
    "chalice",
    "pynamodb",
    "jwt",
    "cryptography",
    "pydantic",
    "pydantic_core",
    "fhir.resources",
    "aws_lambda_powertools",
    "jmespath",
    "nh3",
)
FROM_RUNTIME = ("boto3", "botocore")
RUNTIME_ONLY_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py")
TIMEOUT_S = 180


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> PackageResult:
    return package(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def sam(packaged: PackageResult) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(packaged.template_path.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in sam["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


@pytest.fixture(scope="module")
def unzipped(packaged: PackageResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("task")  # plays /var/task
    with zipfile.ZipFile(packaged.zip_path) as z:
        z.extractall(target)
    return target


def _pinned(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(rf"^{re.escape(name)}==(\S+)", line.strip(), re.IGNORECASE)
        if match:
            return match.group(1)
    return metadata.version(name)


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding only what Lambda's Python runtime provides:
    boto3 (at the version pinned for development) and its dependencies."""
    venv = tmp_path_factory.mktemp("lambda-runtime") / "venv"
    # No pip or setuptools inside: this interpreter's pip installs into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT_S
    )
    python = venv / "bin" / "python"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"boto3=={_pinned('boto3')}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"pip install boto3 failed:\n{proc.stdout}\n{proc.stderr}"
    return python


def _command_of(script: str, module_main: str) -> list[str]:
    """A console script of this interpreter's environment, else its entry point."""
    beside = Path(sys.executable).parent / script
    if beside.is_file():
        return [str(beside)]
    module, func = module_main.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


# --- a. cfn-lint ---------------------------------------------------------------------------


def test_packaged_template_passes_cfn_lint(packaged: PackageResult) -> None:
    proc = subprocess.run(
        [*_command_of("cfn-lint", "cfnlint.runner:main"), str(packaged.template_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    # cfn-lint exit code bits: 2 = error, 4 = warning, 8 = informational
    assert proc.returncode & 2 == 0, f"cfn-lint errors:\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode & 1 == 0, f"cfn-lint failed to run:\n{proc.stdout}\n{proc.stderr}"


# --- b. the merged template ----------------------------------------------------------------


def test_template_has_merged_infra(sam: dict[str, Any]) -> None:
    missing = [logical_id for logical_id in INFRA_RESOURCES if logical_id not in sam["Resources"]]
    assert not missing, f"infra resources missing from the packaged template: {missing}"
    assert sam["Resources"]["EmrTable"]["Type"] == "AWS::DynamoDB::Table"
    assert sam["Resources"]["EmrDataKey"]["Type"] == "AWS::KMS::Key"
    assert sam["Resources"]["EmrUserPool"]["Type"] == "AWS::Cognito::UserPool"


def test_stream_publisher_reads_the_table_stream(functions: dict[str, dict[str, Any]]) -> None:
    events = functions["StreamPublisher"]["Events"]
    sources = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
    assert len(sources) == 1, events
    source = sources[0]
    assert source["Stream"] == {"Fn::GetAtt": ["EmrTable", "StreamArn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_pipeline_functions_read_the_real_queues_and_schedules(
    functions: dict[str, dict[str, Any]],
) -> None:
    for function, queue in (
        ("BillingConsumer", "EmrBillingQueue"),
        ("AuditConsumer", "EmrAuditQueue"),
        ("AlertsConsumer", "EmrAlertsQueue"),
    ):
        (source,) = functions[function]["Events"].values()
        assert source["Type"] == "SQS"
        assert source["Properties"]["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for function in ("AlertsEscalation", "LedgerArchive"):
        (source,) = functions[function]["Events"].values()
        assert source["Type"] == "Schedule"
        assert functions[function]["DeadLetterQueue"]["TargetArn"] == {
            "Fn::GetAtt": ["EmrScheduleDLQ", "Arn"]
        }


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Statement" in node:
            statements = node["Statement"]
            yield from statements if isinstance(statements, list) else [statements]
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


def test_no_statement_allows_all_of_dynamodb_or_kms(sam: dict[str, Any]) -> None:
    statements = list(_statements(sam["Resources"]))
    assert statements, "no policy statement found at all"
    broad = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            broad.append(statement)
            continue
        actions = statement.get("Action", [])
        for action in actions if isinstance(actions, list) else [actions]:
            if isinstance(action, str) and action.lower() in {"*", "dynamodb:*", "kms:*"}:
                broad.append(statement)
    assert not broad, f"over-broad grants: {json.dumps(broad, indent=1)}"


# --- c. the zip alone, on what the Lambda runtime provides ----------------------------------


def test_zip_leaves_runtime_sdk_out(packaged: PackageResult) -> None:
    with zipfile.ZipFile(packaged.zip_path) as z:
        tops = {name.split("/", 1)[0] for name in z.namelist()}
        names = z.namelist()
    cached = [name for name in names if "__pycache__/" in name]
    assert not tops & set(RUNTIME_ONLY_TOP_LEVEL), sorted(tops & set(RUNTIME_ONLY_TOP_LEVEL))
    assert not [top for top in tops if re.match(r"(boto3|botocore)-.*\.dist-info$", top)]
    # Bytecode: only what packaging compiled for the runtime, one .pyc per module.
    tag = sys.implementation.cache_tag
    assert all(name.endswith(f".{tag}.pyc") for name in cached), cached[:5]
    assert "app.py" in names and f"__pycache__/app.{tag}.pyc" in names
    assert "functions/engine/__pycache__/service." + tag + ".pyc" in names
    assert {"app.py", "functions", "models", "events", "jmespath"} <= tops


CHECK_SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, sys

    given = json.load(sys.stdin)
    root = os.path.realpath(given["root"])


    class Context:
        aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
        function_name = "emr-dev"
        function_version = "$LATEST"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:emr-dev"
        log_group_name = "/aws/lambda/emr-dev"
        log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"

        def get_remaining_time_in_millis(self):
            return 29000


    def origin(name):
        module = importlib.import_module(name)
        where = getattr(module, "__file__", None) or next(iter(module.__path__))
        return os.path.realpath(where)


    result = {"sys_path": sys.path, "origins": {}, "handlers": {}, "responses": {}}
    import app  # noqa: E402  the handler module, as Lambda imports it
    for name in given["from_zip"] + given["from_runtime"]:
        result["origins"][name] = origin(name)
    for handler in given["handlers"]:
        module_name, _, attr = handler.rpartition(".")
        module = importlib.import_module(module_name)
        result["handlers"][handler] = callable(getattr(module, attr, None))
    for key, event in given["api_events"].items():
        result["responses"][key] = app.app(event, Context())
    result["stream"] = app.stream_publisher(given["stream_event"], Context())
    with open(given["result"], "w") as fh:
        json.dump(result, fh)
    """
)


def _api_event(
    method: str,
    resource: str,
    path: str,
    path_params: dict[str, str] | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    """An API Gateway REST API (v1 payload) Lambda-proxy event."""
    all_headers = {
        "Accept": "application/fhir+json",
        "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "User-Agent": "package-test",
        **headers,
    }
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": "01/Jan/2026:00:00:00 +0000",
            "path": f"/api{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "api",
            "domainPrefix": "abcdef1234",
            "requestTimeEpoch": 1767225600000,
            "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "package-test"},
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "apiId": "abcdef1234",
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _stream_event() -> dict[str, Any]:
    """One DynamoDB stream record the publisher has nothing to do for."""
    image = {"pk": {"S": "TENANT#t#NOOP"}, "sk": {"S": "NOOP"}, "type": {"S": "package-test"}}
    return {
        "Records": [
            {
                "eventID": "1",
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"pk": image["pk"], "sk": image["sk"]},
                    "NewImage": image,
                    "OldImage": image,
                    "SequenceNumber": "100",
                    "SizeBytes": 64,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/emr/stream/x",
            }
        ]
    }


def _lambda_env(
    stack: LocalStack, function: dict[str, Any], task_root: Path, runtime_python: Path
) -> dict[str, str]:
    """What Lambda puts in a function's environment, plus the stack's endpoints."""
    configured = {
        key: value
        for key, value in function.get("Environment", {}).get("Variables", {}).items()
        if isinstance(value, str)  # intrinsics are resolved to the local stack below
    }
    return {
        "PATH": f"{runtime_python.parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": "emr-dev",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.get("MemorySize", 1024)),
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/emr-dev",
        "AWS_REGION": stack.region,
        "PYTHONPATH": str(task_root),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only in Lambda
        **configured,
        **stack.env(),
    }


@pytest.fixture(scope="module")
def patient(stack: LocalStack) -> tuple[str, str]:
    """A patient created through the in-process app, and a token that may read it."""
    from chalice.test import Client

    from devstack import seed

    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=stack.endpoint,
        region_name=stack.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    seed.ensure_users(cognito, stack.user_pool_id)
    token = seed.id_token(
        cognito, stack.user_pool_id, stack.app_client_id, "clinician", "demo-clinic"
    )
    import app as app_module

    body = {
        "resourceType": "Patient",
        "name": [{"family": "Zipson", "given": ["Ada"]}],
        "birthDate": "1980-01-01",
    }
    with Client(app_module.app) as client:
        resp = client.http.post(
            "/fhir/R4/Patient",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            body=json.dumps(body),
        )
    assert resp.status_code == 201, resp.body
    return token, str(json.loads(resp.body)["id"])


@pytest.fixture(scope="module")
def lambda_run(
    stack: LocalStack,
    patient: tuple[str, str],
    unzipped: Path,
    runtime_python: Path,
    functions: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    token, patient_id = patient
    result_path = tmp_path_factory.mktemp("lambda-result") / "result.json"
    given = {
        "root": str(unzipped),
        "result": str(result_path),
        "from_zip": list(FROM_ZIP),
        "from_runtime": list(FROM_RUNTIME),
        "handlers": sorted({props["Handler"] for props in functions.values()}),
        "api_events": {
            "metadata": _api_event("GET", "/fhir/R4/metadata", "/fhir/R4/metadata", None, {}),
            "patient": _api_event(
                "GET",
                "/fhir/R4/Patient/{resource_id}",
                f"/fhir/R4/Patient/{patient_id}",
                {"resource_id": patient_id},
                {"Authorization": f"Bearer {token}"},
            ),
        },
        "stream_event": _stream_event(),
    }
    proc = subprocess.run(
        [str(runtime_python), "-c", CHECK_SCRIPT],
        input=json.dumps(given),
        cwd=unzipped,
        env=_lambda_env(stack, functions["APIHandler"], unzipped, runtime_python),
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"the zip failed to run:\n{proc.stdout[-4000:]}\n{proc.stderr}"
    loaded: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    loaded["patient_id"] = patient_id
    return loaded


def _inside(path: str, root: Path) -> bool:
    return Path(path).is_relative_to(root.resolve())


def test_zip_code_and_dependencies_come_from_the_zip(
    lambda_run: dict[str, Any], unzipped: Path
) -> None:
    origins = lambda_run["origins"]
    outside = {name: origins[name] for name in FROM_ZIP if not _inside(origins[name], unzipped)}
    assert not outside, f"imported outside the zip: {outside}; sys.path {lambda_run['sys_path']}"
    from_repo = [p for p in lambda_run["sys_path"] if p and _inside(p, ROOT)]
    assert not from_repo, f"the repository leaked onto sys.path: {from_repo}"


def test_sdk_comes_from_the_runtime(lambda_run: dict[str, Any], unzipped: Path) -> None:
    origins = lambda_run["origins"]
    inside = {name: origins[name] for name in FROM_RUNTIME if _inside(origins[name], unzipped)}
    assert not inside, f"the SDK was found inside the zip: {inside}"


def test_every_handler_in_the_template_resolves(
    lambda_run: dict[str, Any], functions: dict[str, dict[str, Any]]
) -> None:
    handlers = lambda_run["handlers"]
    assert set(handlers) == {props["Handler"] for props in functions.values()}
    assert "app.stream_publisher" in handlers
    unresolved = [name for name, ok in handlers.items() if not ok]
    assert not unresolved, f"handlers not callable in the zip: {unresolved}"


def test_metadata_answers_api_gateway_event(lambda_run: dict[str, Any]) -> None:
    resp = lambda_run["responses"]["metadata"]
    assert resp["statusCode"] == 200, resp
    body = json.loads(resp["body"])
    assert body["resourceType"] == "CapabilityStatement"


def test_authenticated_read_from_the_zip(lambda_run: dict[str, Any]) -> None:
    resp = lambda_run["responses"]["patient"]
    assert resp["statusCode"] == 200, resp
    body = json.loads(resp["body"])
    assert body["resourceType"] == "Patient"
    assert body["id"] == lambda_run["patient_id"]
    assert body["name"][0]["family"] == "Zipson"
    assert body["birthDate"] == "1980-01-01"


def test_stream_publisher_runs_from_the_zip(lambda_run: dict[str, Any]) -> None:
    assert lambda_run["stream"] == {"batchItemFailures": []}


def test_package_result_sizes(packaged: PackageResult) -> None:
    assert packaged.zip_bytes == os.path.getsize(packaged.zip_path)
    assert packaged.zip_bytes < packaged.unzipped_bytes < 262_144_000
    assert "botocore" in packaged.stripped
