"""The one error table: domain exceptions -> HTTP status + FHIR OperationOutcome.

Use cases raise these; the view decorator (functions/common/http.py) turns them
into responses. Diagnostics never carry PHI: they name fields, not values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Issue:
    code: str  # FHIR IssueType: invalid, structure, required, value, not-found, ...
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = self.expression
        return out


class ApiError(Exception):
    status = 500
    outcome = "error"  # audit outcome

    def __init__(self, issues: list[Issue] | Issue, headers: dict[str, str] | None = None) -> None:
        self.issues = issues if isinstance(issues, list) else [issues]
        self.headers = headers or {}
        super().__init__("; ".join(i.diagnostics for i in self.issues))

    @classmethod
    def of(cls, code: str, diagnostics: str, *expression: str) -> ApiError:
        return cls(Issue(code, diagnostics, list(expression)))


class Invalid(ApiError):
    status = 400
    outcome = "invalid"


class Unauthenticated(ApiError):
    status = 401
    outcome = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    outcome = "denied"


class NotFound(ApiError):
    status = 404
    outcome = "not-found"


class MethodNotAllowed(ApiError):
    status = 405
    outcome = "invalid"


class NotAcceptable(ApiError):
    status = 406
    outcome = "invalid"


class Conflict(ApiError):
    status = 409
    outcome = "conflict"


class Gone(ApiError):
    status = 410
    outcome = "gone"


class PreconditionFailed(ApiError):
    status = 412
    outcome = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    outcome = "invalid"


class UnsupportedMediaType(ApiError):
    status = 415
    outcome = "invalid"


class Unprocessable(ApiError):
    status = 422
    outcome = "invalid"


class PreconditionRequired(ApiError):
    status = 428
    outcome = "invalid"


class ServiceUnavailable(ApiError):
    status = 503
    outcome = "error"


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


INTERNAL = Issue("exception", "Internal error; the request id identifies it in the logs.")
BUSY = Issue("transient", "The service is busy; retry the request shortly.")
