"""`.local/stack.json`: how other commands (`make token`, `make import`,
`make bench`) find the running local stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STACK_FILE = Path(os.environ.get("EMR_STACK_FILE") or ROOT / ".local" / "stack.json")


def write(info: dict[str, Any]) -> None:
    STACK_FILE.parent.mkdir(parents=True, exist_ok=True)
    STACK_FILE.write_text(json.dumps(info, indent=2))


def read() -> dict[str, Any]:
    if not STACK_FILE.exists():
        raise SystemExit("No local stack is running: start it with `make run` first.")
    data: dict[str, Any] = json.loads(STACK_FILE.read_text())
    return data


def remove() -> None:
    STACK_FILE.unlink(missing_ok=True)
