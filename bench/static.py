"""Figures measured outside the running API: cold import time of the Lambda
entry module in fresh processes, and the size of the deployment zip."""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZIP = Path("dist") / "deployment.zip"  # relative to ROOT; never reported as an absolute path
# The clock stops right after `import app`. Then, untimed, the snippet prints the
# FHIR types registered at that point (read only if `import app` itself loaded the
# declarations: functions.engine.types in sys.modules; otherwise none), and last the
# milliseconds.
IMPORT_SNIPPET = (
    "import time; t=time.perf_counter(); import app; ms=(time.perf_counter()-t)*1000; "
    "import sys; r=sys.modules.get('functions.engine.registry'); "
    "loaded=r is not None and 'functions.engine.types' in sys.modules; "
    "print(','.join(d.name for d in r.all_types()) if loaded else ''); print(ms)"
)


@dataclass
class ColdRuns:
    """Milliseconds of each fresh `import app`, and the types each run had registered."""

    ms: list[float] = field(default_factory=list)
    types: list[tuple[str, ...]] = field(default_factory=list)

    def registered(self) -> list[str] | None:
        """The types registered after `import app` if every run had the same, else None."""
        distinct = set(self.types)
        return list(self.types[0]) if len(distinct) == 1 else None


def _import_ms(
    options: list[str], env: dict[str, str], cwd: Path = ROOT
) -> tuple[float, tuple[str, ...]]:
    out = subprocess.run(
        [sys.executable, *options, "-c", IMPORT_SNIPPET],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    *_, types, ms = out.stdout.splitlines()
    return float(ms), tuple(t for t in types.strip().split(",") if t)


def _runs(runs: int, env: dict[str, str], cwd: Path = ROOT) -> ColdRuns:
    result = ColdRuns()
    for _ in range(runs):
        ms, types = _import_ms([], env, cwd)
        result.ms.append(ms)
        result.types.append(types)
    return result


def cold_import_ms(runs: int = 5) -> ColdRuns:
    """`import app` in `runs` fresh interpreters, cwd = repo root, stack env set.
    Bytecode caches are whatever the checkout has (this process wrote them)."""
    return _runs(runs, dict(os.environ))


def cold_import_lambda_like_ms(runs: int = 5, archive: Path | None = None) -> ColdRuns:
    """`import app` from the unzipped deployment zip, as Lambda imports it: the zip
    first on sys.path, cwd = the code folder, no bytecode written (Lambda's code
    folder is read-only, so only the .pyc files the zip carries help), the SDK
    (boto3/botocore, stripped from the zip) from this interpreter's site-packages
    as the runtime provides it. `archive`: dist/deployment.zip unless given (see
    `current_zip`). No runs when there is no zip."""
    import zipfile

    archive = archive or ROOT / ZIP
    if not archive.is_file():
        return ColdRuns()
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as code:
        with zipfile.ZipFile(archive) as z:
            z.extractall(code)
        env = {**os.environ, "PYTHONPATH": code, "PYTHONDONTWRITEBYTECODE": "1"}
        return _runs(runs, env, Path(code))


@dataclass(frozen=True)
class FreshZip:
    """A package built now in a temporary folder, because dist/deployment.zip is
    older than the sources (dist/ is left as it is)."""

    path: Path
    size_bytes: int
    build_s: float

    def summary(self) -> dict[str, Any]:
        return {
            "bytes": self.size_bytes,
            "mb": round(self.size_bytes / 1_000_000, 2),
            "build_s": self.build_s,
        }


@contextlib.contextmanager
def current_zip(
    found: PackageSize, say: Callable[[str], None] = print
) -> Iterator[tuple[FreshZip | None, str | None]]:
    """The zip `cold_import_ms_lambda_like` imports from must hold the current
    sources (every registered type). When dist/deployment.zip is older than the
    sources, a current one is built in a temporary folder for as long as the
    block runs: (that build, None); if the build fails, (None, a note) and the
    stale zip is used. (None, None) when dist/deployment.zip is current or absent."""
    target = ROOT / ZIP
    if found.built_now or not target.is_file() or not _older_than_sources(target):
        yield None, None
        return
    say(
        f"{ZIP} is older than the sources: building a current package in a temporary "
        "folder for the Lambda-like import ..."
    )
    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        started = time.perf_counter()
        try:
            from devstack.package import package

            with contextlib.redirect_stdout(io.StringIO()):
                built = package(Path(out)).zip_path
        except Exception as exc:  # report, never fail the bench over packaging
            message = str(exc).replace(str(ROOT), ".").replace(out, "<tmp>")
            note = (
                f"{ZIP} is stale and a current build failed ({type(exc).__name__}: "
                f"{message}); cold_import_ms_lambda_like was measured from the stale zip"
            )
            yield None, note
            return
        build_s = round(time.perf_counter() - started, 1)
        yield FreshZip(built, built.stat().st_size, build_s), None


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
