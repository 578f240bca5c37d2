"""Which failures ask the client to retry (503) rather than report a bug (500)."""

from __future__ import annotations

from botocore.exceptions import ClientError
from pynamodb.exceptions import (
    CancellationReason,
    GetError,
    TransactWriteError,
    VerboseClientError,
)

from models.aws import retryable


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")


def test_throttling_is_retryable_directly_and_through_pynamodb():
    assert retryable(_client_error("ProvisionedThroughputExceededException"))
    assert retryable(GetError(cause=_client_error("ThrottlingException")))


def test_a_transaction_conflict_is_retryable():
    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "m"}},
        "TransactWriteItems",
        cancellation_reasons=[None, CancellationReason(code="TransactionConflict")],
    )
    assert retryable(TransactWriteError("cancelled", cause=cause))


def test_bugs_and_refusals_are_not_retryable():
    assert not retryable(ValueError("bug"))
    assert not retryable(_client_error("ValidationException"))
    assert not retryable(_client_error("AccessDeniedException"))
