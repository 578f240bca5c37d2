"""Build the deployable artifact: `python -m devstack package --out dist`.

Runs `chalice package --stage dev --merge-template infra/template.json` (SAM
template + one deployment zip shared by every function), then rewrites the zip
without what the Lambda Python runtime already provides, and writes both files
to the output folder under Chalice's own names (`deployment.zip`, `sam.json`).

What is stripped, and why (decided from the packages' own `Requires-Dist`):

* boto3, botocore, s3transfer, python-dateutil, urllib3, six. The Lambda
  runtime ships the AWS SDK (boto3 and botocore) with its dependencies. Our
  code only asks for boto3/botocore (directly, and through pynamodb); dateutil,
  urllib3 and six are in the zip only because botocore pulls them in (boto3 and
  s3transfer are listed for the day something pulls in boto3). Keeping them
  adds ~22 MB unzipped (botocore alone ~21 MB), and a zip botocore next to the
  runtime's boto3 is a classic source of version skew.
* jmespath is KEPT. It ships with the runtime's boto3 too, but it is a direct
  dependency of aws_lambda_powertools (pinned in requirements.txt), is tiny
  (~60 KB), and the runtime's copy is an implementation detail of its SDK whose
  version AWS changes without notice. The zip's copy comes first on sys.path in
  Lambda (/var/task before /var/runtime) and satisfies botocore's range too.
* `__pycache__` folders (Chalice copies vendor/ as it is, bytecode included).

Bytecode is then added back, made fresh: every `.py` is compiled for the
function's runtime (only when this interpreter is that version) into
`__pycache__/*.cpython-3XX.pyc` with unchecked-hash invalidation. Lambda's code
folder is read-only, so without it every cold start compiles each imported
module from source (about 300 ms for the API's imports; `make bench` reports
`cold_import_ms_lambda_like`). Unchecked hashes never look at file times, which
zip extraction does not preserve; the zip is immutable, so they cannot go stale.

A guard keeps the decision honest: if a distribution left in the zip requires
one of the stripped internals (s3transfer, dateutil, urllib3, six) for the
function's runtime, packaging fails and names it, because it would silently run
against whatever version the runtime happens to carry.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MERGE_TEMPLATE = ROOT / "infra" / "template.json"
STAGE = "dev"
ZIP_NAME = "deployment.zip"
TEMPLATE_NAME = "sam.json"

# Distribution (normalized name) -> top-level modules it installs.
RUNTIME_PROVIDED: dict[str, tuple[str, ...]] = {
    "boto3": ("boto3",),
    "botocore": ("botocore",),
    "s3transfer": ("s3transfer",),
    "python_dateutil": ("dateutil",),
    "urllib3": ("urllib3",),
    "six": ("six",),
}
# Of those, what our code may depend on directly: the runtime's documented SDK.
SDK = frozenset({"boto3", "botocore"})
# Lambda's quota for a function's code unzipped, layers included ("250 MB").
LAMBDA_UNZIPPED_LIMIT = 262_144_000


class PackagingError(RuntimeError):
    """`chalice package` failed, or its output is not deployable as it is."""


@dataclass(frozen=True)
class PackageResult:
    zip_path: Path
    template_path: Path
    zip_bytes: int
    unzipped_bytes: int
    files: int = 0
    stripped: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        return (
            f"{self.zip_path.name}: {_mb(self.zip_bytes)} MB zipped, "
            f"{_mb(self.unzipped_bytes)} MB unzipped, {self.files} files "
            f"(runtime-provided stripped: {', '.join(self.stripped) or 'none'}); "
            f"template {self.template_path}"
        )


def package(out: Path) -> PackageResult:
    """Run `chalice package`, strip runtime-provided packages, write to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emr-package-") as tmp:
        built = Path(tmp) / "chalice"
        run_chalice_package(built)
        template_src = built / TEMPLATE_NAME
        zip_src = built / ZIP_NAME
        if not template_src.is_file() or not zip_src.is_file():
            raise PackagingError(f"chalice package wrote no {TEMPLATE_NAME}/{ZIP_NAME} in {built}")
        runtime = _runtime_of(json.loads(template_src.read_text(encoding="utf-8")))
        zip_path = out / ZIP_NAME
        files, unzipped, stripped = rewrite_zip(zip_src, zip_path, runtime)
        template_path = out / TEMPLATE_NAME
        shutil.copyfile(template_src, template_path)
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise PackagingError(f"{zip_path} unzips to {_mb(unzipped)} MB, over Lambda's 250 MB limit")
    result = PackageResult(
        zip_path=zip_path,
        template_path=template_path,
        zip_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=files,
        stripped=stripped,
    )
    print(result.summary())
    return result


def chalice_command() -> list[str]:
    """The chalice CLI of this very interpreter (never one found on PATH)."""
    if importlib.util.find_spec("chalice.__main__") is not None:
        return [sys.executable, "-m", "chalice"]
    script = Path(sys.executable).parent / "chalice"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]


def run_chalice_package(target: Path) -> None:
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    command = [
        *chalice_command(),
        "package",
        "--stage",
        STAGE,
        "--merge-template",
        str(MERGE_TEMPLATE.relative_to(ROOT)),
        str(target),
    ]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    output = f"{proc.stdout}\n{proc.stderr}".strip()
    if proc.returncode != 0:
        raise PackagingError(f"{' '.join(command)} exited {proc.returncode}:\n{output}")
    if "Could not install dependencies" in output:
        # Chalice only warns and carries on with an incomplete zip.
        raise PackagingError(f"chalice could not build every dependency for Lambda:\n{output}")


def _runtime_of(template: dict[str, Any]) -> str:
    runtimes = {
        resource["Properties"].get("Runtime")
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    if len(runtimes) != 1 or not str(next(iter(runtimes))).startswith("python3."):
        raise PackagingError(f"expected one Python runtime for all functions, got {runtimes}")
    return str(runtimes.pop())


# --- the zip -----------------------------------------------------------------------------

_DIST_DIR = re.compile(r"^(?P<name>[^-/]+)-[^/]*\.(?:dist-info|data)$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _stripped_dist(top: str) -> str | None:
    """The runtime-provided distribution a top-level zip entry belongs to, if any."""
    match = _DIST_DIR.match(top)
    if match:
        name = _normalize(match.group("name"))
        return name if name in RUNTIME_PROVIDED else None
    module = top.removesuffix(".py")
    for dist, modules in RUNTIME_PROVIDED.items():
        if module in modules:
            return dist
    return None


def _keep(name: str) -> bool:
    return "__pycache__" not in name.split("/")


def rewrite_zip(src: Path, dst: Path, runtime: str) -> tuple[int, int, tuple[str, ...]]:
    """Copy `src` to `dst` without runtime-provided packages and bytecode caches.
    Returns (files, unzipped bytes, stripped distributions)."""
    files = unzipped = 0
    compile_for = runtime if runtime == _this_runtime() else None
    stripped: set[str] = set()
    metadata: dict[str, str] = {}
    tmp = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            dist = _stripped_dist(info.filename.split("/", 1)[0])
            if dist is not None:
                stripped.add(dist)
                continue
            if not _keep(info.filename):
                continue
            data = zin.read(info)
            if info.filename.endswith(".dist-info/METADATA"):
                metadata[info.filename] = data.decode("utf-8", errors="replace")
            zout.writestr(info, data)
            if not info.is_dir():
                files += 1
                unzipped += info.file_size
            if compile_for and info.filename.endswith(".py"):
                pyc_name, pyc = _bytecode(info.filename, data, compile_for)
                if pyc is not None:
                    zout.writestr(pyc_name, pyc)
                    files += 1
                    unzipped += len(pyc)
    _check_no_hidden_runtime_deps(metadata, runtime)
    tmp.replace(dst)
    return files, unzipped, tuple(sorted(stripped))


def _this_runtime() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def _bytecode(name: str, source: bytes, runtime: str) -> tuple[str, bytes | None]:
    """The unchecked-hash .pyc of one module, as Lambda's Python would look for it."""
    import importlib.util
    import py_compile

    folder, _, module = name.rpartition("/")
    tag = sys.implementation.cache_tag  # e.g. cpython-311, equal to the runtime's here
    pyc_name = f"{folder + '/' if folder else ''}__pycache__/{module[:-3]}.{tag}.pyc"
    with tempfile.TemporaryDirectory(prefix="emr-pyc-") as tmp:
        src, dst = Path(tmp) / "m.py", Path(tmp) / "m.pyc"
        src.write_bytes(source)
        try:
            py_compile.compile(
                str(src),
                cfile=str(dst),
                dfile=f"/var/task/{name}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError:
            return pyc_name, None  # not valid for this runtime (e.g. py2 leftovers): skip
        assert dst.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
        return pyc_name, dst.read_bytes()


# --- guard: nothing left in the zip relies on the runtime's SDK internals ------------------


def _requirement_class() -> Any:
    # pip (which chalice needs anyway) vendors packaging when it is not installed
    for module in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            return importlib.import_module(module).Requirement
        except ImportError:
            continue
    raise PackagingError("cannot parse Requires-Dist: neither packaging nor pip is importable")


def _requires_dist(text: str) -> Iterator[str]:
    for line in text.splitlines():
        if not line.strip():
            break  # end of the headers; the description follows
        if line.startswith("Requires-Dist:"):
            yield line.partition(":")[2].strip()


def _lambda_marker_env(runtime: str) -> dict[str, str]:
    version = runtime.removeprefix("python")
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "extra": "",
    }


def hidden_runtime_deps(metadata: dict[str, str], runtime: str) -> list[str]:
    """`dist -> requirement` pairs where a kept distribution needs a stripped internal."""
    requirement = _requirement_class()
    env = _lambda_marker_env(runtime)
    internals = set(RUNTIME_PROVIDED) - SDK
    found: list[str] = []
    for path, text in metadata.items():
        owner = path.split("/", 1)[0]
        for spec in _requires_dist(text):
            req = requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if _normalize(req.name) in internals:
                found.append(f"{owner} -> {spec}")
    return found


def _check_no_hidden_runtime_deps(metadata: dict[str, str], runtime: str) -> None:
    found = hidden_runtime_deps(metadata, runtime)
    if found:
        raise PackagingError(
            "packages kept in the zip require packages stripped as runtime-provided "
            "(keep them by removing them from RUNTIME_PROVIDED in devstack/package.py, "
            "or drop the dependency): " + "; ".join(found)
        )


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f}"
