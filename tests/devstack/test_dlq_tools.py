"""`python -m devstack dlq` lists dead letters with their reason and leaves them on
the DLQ; `python -m devstack redrive --queue billing` moves them back to the queue
without the dead-letter attributes. Both find the stack through its stack file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from devstack.queues import QueueRunner
from events.consumer import Consumer
from tests.pipelines.conftest import QueuePair, encounter_finished, eventbridge_body

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def billing(stack, tmp_path):  # type: ignore[no-untyped-def]
    """A billing queue pair of its own, named in a stack file as `make run` writes it."""
    pair = QueuePair(boto3.client("sqs"), "emr-test-billing")
    stack_file = tmp_path / "stack.json"
    env = {
        **stack.env(),
        "EMR_BILLING_QUEUE_URL": pair.url,
        "EMR_BILLING_DLQ_URL": pair.dlq_url,
        "api": "http://127.0.0.1:1",
    }
    stack_file.write_text(json.dumps(env))
    yield pair, stack_file
    pair.delete()


def devstack(stack_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMR_STACK_FILE": str(stack_file)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def dead_letter(pair: QueuePair, monkeypatch: pytest.MonkeyPatch, bodies: list[str]) -> None:
    """Send bodies through a consumer that dead-letters them (malformed, unknown major)."""
    monkeypatch.setenv("EMR_BILLING_DLQ_URL", pair.dlq_url)
    consumer = Consumer("billing", {}, "EMR_BILLING_DLQ_URL")
    for body in bodies:
        pair.send(body)
    runner = QueueRunner(
        pair.sqs, pair.url, pair.arn_, consumer.handle_batch, function_name="billing_consumer"
    )
    runner.drain()


def test_dlq_lists_dead_letters_with_their_reason_and_leaves_them(billing, monkeypatch):
    pair, stack_file = billing
    event = encounter_finished()
    dead_letter(pair, monkeypatch, [eventbridge_body(event, "encounter.finished.v7"), "{oops"])

    result = devstack(stack_file, "dlq")

    assert result.returncode == 0, result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    held = pair.all_messages(pair.dlq_url)  # still there: listing consumed nothing
    assert len(held) == 2
    by_body = {m["Body"]: m["MessageId"] for m in held}
    versioned = lines[by_body[eventbridge_body_of(held, "encounter.finished.v7")]]
    assert versioned.startswith("EmrBillingDLQ")
    assert "encounter.finished.v7" in versioned and event.event_id in versioned
    assert "unknown major version 7 of encounter.finished" in versioned
    assert "malformed JSON" in lines[by_body["{oops"]]


def eventbridge_body_of(messages: list[dict], detail_type: str) -> str:  # type: ignore[type-arg]
    (body,) = [m["Body"] for m in messages if detail_type in m["Body"]]
    return str(body)


def test_redrive_moves_a_consumers_dead_letters_back_without_their_reason(billing, monkeypatch):
    pair, stack_file = billing
    bodies = [eventbridge_body(encounter_finished(), "encounter.finished.v7"), "{oops"]
    dead_letter(pair, monkeypatch, bodies)

    result = devstack(stack_file, "redrive", "--queue", "billing")

    assert result.returncode == 0, result.stderr
    assert "Redrove 2 message(s)" in result.stdout
    assert pair.all_messages(pair.dlq_url) == []
    back = pair.all_messages(pair.url)
    assert sorted(m["Body"] for m in back) == sorted(bodies)
    assert all("MessageAttributes" not in m for m in back)


def test_redrive_names_the_queues_it_knows(billing):
    _, stack_file = billing
    result = devstack(stack_file, "redrive", "--queue", "nonsense")
    assert result.returncode != 0
    assert "billing|audit|alerts" in result.stderr


def test_make_targets_run_the_commands():
    dry = subprocess.run(
        ["make", "-n", "dlq", "redrive", "QUEUE=alerts"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "-m devstack dlq" in dry.stdout
    assert '-m devstack redrive --queue "alerts"' in dry.stdout
