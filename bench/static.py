"""Figures measured outside the running API: cold import time of the Lambda
entry module in fresh processes, and the size of the deployment zip."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZIP = Path("dist") / "deployment.zip"  # relative to ROOT; never reported as an absolute path
IMPORT_SNIPPET = (
    "import time; t=time.perf_counter(); import app; print((time.perf_counter()-t)*1000)"
)


def _import_ms(options: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    out = subprocess.run(
        [sys.executable, *options, "-c", IMPORT_SNIPPET],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(out.stdout.strip().splitlines()[-1])


def cold_import_ms(runs: int = 5) -> list[float]:
    """`import app` in `runs` fresh interpreters, cwd = repo root, stack env set.
    Bytecode caches are whatever the checkout has (this process wrote them)."""
    return [_import_ms([], dict(os.environ)) for _ in range(runs)]


def cold_import_lambda_like_ms(runs: int = 5) -> list[float]:
    """`import app` from the unzipped deployment zip, as Lambda imports it: the zip
    first on sys.path, cwd = the code folder, no bytecode written (Lambda's code
    folder is read-only, so only the .pyc files the zip carries help), the SDK
    (boto3/botocore, stripped from the zip) from this interpreter's site-packages
    as the runtime provides it. Empty when there is no dist/deployment.zip."""
    import zipfile

    archive = ROOT / ZIP
    if not archive.is_file():
        return []
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as code:
        with zipfile.ZipFile(archive) as z:
            z.extractall(code)
        env = {**os.environ, "PYTHONPATH": code, "PYTHONDONTWRITEBYTECODE": "1"}
        return [_import_ms([], env, cwd=Path(code)) for _ in range(runs)]


@dataclass(frozen=True)
class PackageSize:
    mb: float | None
    size_bytes: int | None
    built_now: bool = False
    build_s: float | None = None
    note: str | None = None

    @classmethod
    def of(cls, path: Path, build_s: float | None = None) -> PackageSize:
        size = path.stat().st_size
        return cls(round(size / 1_000_000, 2), size, build_s is not None, build_s)


def package_size() -> PackageSize:
    """dist/deployment.zip if present, else built with devstack.package.package.
    MB are decimal (10**6 bytes), as `make package` prints them."""
    target = ROOT / ZIP
    if target.is_file():
        found = PackageSize.of(target)
        if _older_than_sources(target):
            note = f"{ZIP} is older than the sources; `make package` for a current figure"
            return PackageSize(found.mb, found.size_bytes, note=note)
        return found
    started = time.perf_counter()
    try:
        from devstack.package import package
    except ImportError as exc:
        note = f"{ZIP} missing and devstack.package not importable ({type(exc).__name__})"
        return PackageSize(None, None, note=f"{note}; run `make package`")
    try:
        package(ROOT / "dist")
    except Exception as exc:  # report, never fail the bench over packaging
        message = str(exc).replace(str(ROOT), ".")  # no machine paths in the results
        note = f"devstack.package.package failed: {type(exc).__name__}: {message}"
        return PackageSize(None, None, note=note)
    build_s = round(time.perf_counter() - started, 1)
    if not target.is_file():
        return PackageSize(None, None, True, build_s, f"packaging ran but wrote no {ZIP}")
    return PackageSize.of(target, build_s)


SOURCES = ("app.py", "requirements.txt", "functions", "models", "events", "vendor")


def _older_than_sources(target: Path) -> bool:
    built = target.stat().st_mtime
    for name in SOURCES:
        path = ROOT / name
        files = path.rglob("*.py") if path.is_dir() else [path]
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def median(values: list[float]) -> float:
    return round(float(statistics.median(values)), 1)
