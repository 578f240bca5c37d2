"""checkov on the deployable template: `python -m devstack.checkov [dist/sam.json]`.

checkov pins its own dependencies exactly (boto3 among them, older than the SDK
this project pins), so it cannot share the project's virtualenv. It lives in
`.venv/checkov`, installed from `requirements-checkov.txt` (every version pinned)
by `ensure()`, which `make` runs with the rest of the setup and the test calls too;
it reinstalls only when that file changes.

Speed: checkov's JSONPath parser (bc-jsonpath-ng, built on PLY) rebuilds its LALR
table on each of the ~900 expressions it parses for this template, unless a table
module is importable beside the parser. `ensure()` writes that module once after
installing (PLY's own cache, read only when its grammar signature matches), which
takes a run over the packaged template from minutes to well under a minute.

Checks that do not apply are skipped in `infra/template.json`, on the resource
(`Metadata.checkov.skip`, with a short comment), and each is justified in
`infra/README.md` ("Checkov checks skipped"); nothing is skipped on the command line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-checkov.txt"
VENV = ROOT / ".venv" / "checkov"
STAMP = VENV / ".installed"
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600

# Run by the checkov virtualenv's interpreter: PLY writes the parse table of the
# extended JSONPath grammar where `parse_token_stream` looks for it.
_PARSE_TABLE = """
import os, ply.yacc
from bc_jsonpath_ng.ext import parser
ply.yacc.yacc(module=parser.ExtentedJsonPathParser(), tabmodule="parser_jsonpath_parsetab",
              outputdir=os.path.dirname(parser.__file__), write_tables=1, start="jsonpath",
              debug=False, errorlog=ply.yacc.NullLogger())
import bc_jsonpath_ng.ext.parser_jsonpath_parsetab
"""


class CheckovError(RuntimeError):
    """checkov could not be installed or did not produce a report."""


def executable() -> Path:
    return VENV / "bin" / "checkov"


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def installed() -> bool:
    return executable().is_file() and STAMP.is_file() and STAMP.read_text() == _wanted()


def ensure() -> Path:
    """The checkov executable, installed first if missing or out of date."""
    if installed():
        return executable()
    shutil.rmtree(VENV, ignore_errors=True)
    python = VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        [str(python), "-c", _PARSE_TABLE],
    ]
    for step in steps:
        proc = subprocess.run(
            step, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT_S
        )
        if proc.returncode != 0:
            raise CheckovError(f"{' '.join(step[:4])} failed:\n{proc.stdout}\n{proc.stderr}")
    STAMP.write_text(_wanted())
    return executable()


def run(template: Path) -> dict[str, Any]:
    """checkov's JSON report on one CloudFormation/SAM template (all checks)."""
    command = [
        str(ensure()),
        "--file",
        str(template),
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--compact",
        "--skip-download",  # no platform: the bundled checks of the pinned version
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT_S, cwd=ROOT
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise CheckovError(
            f"checkov exited {proc.returncode} without a report:\n{proc.stderr}"
        ) from error
    reports = report if isinstance(report, list) else [report]
    if len(reports) != 1 or reports[0].get("check_type") != "cloudformation":
        raise CheckovError(f"expected one CloudFormation report, got {len(reports)}")
    result: dict[str, Any] = reports[0]
    return result


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in report["results"].get("failed_checks", [])
    ]


def main(argv: list[str]) -> int:
    ensure()
    if not argv:
        print(f"checkov installed: {executable()}")
        return 0
    report = run(Path(argv[0]))
    summary = report["summary"]
    print(
        f"checkov {summary['checkov_version']}: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped (justified in infra/README.md)"
    )
    for line in failures(report):
        print(f"FAILED {line}")
    return 1 if summary["failed"] or summary["parsing_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
