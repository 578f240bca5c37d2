"""Keys start with the tenant and refuse identifiers that could bend their shape;
the dependency direction between the top-level packages holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models import keys

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_starts_with_the_tenant():
    t = "demo-clinic"
    for built in (
        keys.patient_pk(t, "p1"),
        keys.type_list_pk(t, "Patient"),
        keys.search_pk(t, "A" * 22),
        keys.audit_patient_pk(t, "p1"),
        keys.audit_tenant_pk(t, "2026-01-01"),
        keys.outbox_pk(t, "e1"),
        keys.tenant_pk(t),
        keys.audit_day_gsi(t, "2026-01-01"),
    ):
        assert built.startswith(f"TENANT#{t}")


@pytest.mark.parametrize("tenant", ["", "A", "demo#clinic", "demo clinic", "-x", "x" * 70])
def test_bad_tenants_are_refused(tenant):
    with pytest.raises(ValueError):
        keys.patient_pk(tenant, "p1")


@pytest.mark.parametrize("pid", ["", "a#b", "a/b", "x" * 65, "ü"])
def test_bad_ids_are_refused(pid):
    with pytest.raises(ValueError):
        keys.patient_pk("demo-clinic", pid)


def test_history_keys_sort_by_version():
    ks = [keys.history_sk("Patient", "p", v) for v in (1, 2, 10, 100)]
    assert ks == sorted(ks)


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("models", {"functions", "events", "devstack", "app", "chalice"}),
        ("events", {"functions", "devstack", "app", "chalice"}),
        ("functions", {"devstack", "app"}),
    ],
)
def test_dependency_direction(package, forbidden):
    assert not (_imports(package) & forbidden)


def test_top_level_names_resolve_to_this_repository():
    import events
    import functions
    import models

    for module in (events, functions, models):
        assert Path(module.__file__).resolve().parent.parent == ROOT


def test_vendor_links_point_at_the_packages():
    for name in ("functions", "models", "events"):
        link = ROOT / "vendor" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()
    assert (ROOT / "chalice.json").resolve() == (ROOT / ".chalice" / "config.json").resolve()
