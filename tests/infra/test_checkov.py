"""checkov passes on the packaged template (`chalice package` output with
infra/template.json merged): no failed check, and every skipped check is declared on
its resource in infra/template.json and justified in infra/README.md.

checkov runs from its own virtualenv (devstack/checkov.py; `make` installs it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from devstack import checkov
from devstack.package import run_chalice_package

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.json"
README = ROOT / "infra" / "README.md"
SECTION = "## Checkov checks skipped"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checkov") / "chalice"
    run_chalice_package(out)
    return out / "sam.json"


@pytest.fixture(scope="module")
def report(packaged: Path) -> dict[str, Any]:
    return checkov.run(packaged)


def _declared_skips() -> set[tuple[str, str]]:
    """(check id, logical id) of every `Metadata.checkov.skip` in the fragment."""
    template = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    found: set[tuple[str, str]] = set()
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip["comment"]) > 20, (logical_id, skip)
            found.add((skip["id"], logical_id))
    return found


def _readme_skips() -> dict[str, tuple[set[str], str]]:
    """check id -> (logical ids, justification) from the README's table."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[set[str], str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `CKV"):
            continue
        check, resources, why = (cell.strip() for cell in line.strip("|").split("|")[:3])
        check_id = re.findall(r"`([A-Z0-9_]+)`", check)[0]
        rows[check_id] = (set(re.findall(r"`(\w+)`", resources)), why)
    return rows


def test_no_check_fails_on_the_packaged_template(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert checkov.failures(report) == []
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    assert summary["passed"] > 100  # the checks did run over the whole template
    assert summary["resource_count"] > 50


def test_every_skip_is_declared_on_its_resource(report: dict[str, Any]) -> None:
    skipped = {
        (check["check_id"], check["resource"].split(".", 1)[1])
        for check in report["results"]["skipped_checks"]
    }
    # both ways: nothing skipped that is not declared, no declaration left stale
    assert skipped == _declared_skips()


def test_every_skip_is_justified_in_the_readme(report: dict[str, Any]) -> None:
    readme = _readme_skips()
    by_check: dict[str, set[str]] = {}
    for check_id, logical_id in _declared_skips():
        by_check.setdefault(check_id, set()).add(logical_id)
    assert set(readme) == set(by_check)
    for check_id, (resources, why) in readme.items():
        assert resources == by_check[check_id], check_id
        assert len(why) > 80, check_id  # a reason a compliance officer can check


def test_checkov_reports_a_failing_check(tmp_path: Path) -> None:
    """The harness fails when checkov finds something (here: a plain queue)."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Plain": {"Type": "AWS::SQS::Queue", "Properties": {}}},
    }
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    report = checkov.run(path)
    assert any(
        line.startswith("CKV_AWS_27 AWS::SQS::Queue.Plain") for line in checkov.failures(report)
    )
