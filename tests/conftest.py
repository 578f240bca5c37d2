"""Shared fixtures: one embedded moto server (real HTTP on 127.0.0.1) per test
worker, provisioned from infra/template.json exactly as `make run` does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.moto_server import EmbeddedMotoServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def moto() -> Iterator[EmbeddedMotoServer]:
    server = EmbeddedMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(moto: EmbeddedMotoServer):  # type: ignore[no-untyped-def]
    from devstack.provision import provision

    local = provision(moto.endpoint)
    os.environ.update(local.env())
    return local


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Third-party test material kept beside the repository. Missing data is a
    failure, never a skip: CI must not pass silently without it."""
    if not (SHARED_DATA / "synthea").is_dir():
        pytest.fail(f"test data folder missing: {SHARED_DATA} (see README, 'Test data')")
    return SHARED_DATA
