"""Logger and metrics (aws-lambda-powertools).

Log lines carry ids, routes, statuses and timings - never bodies, query values
or anything else that could hold PHI (a test searches every captured log line
for a patient's name).

Metrics are CloudWatch embedded metric format (EMF) lines on stdout, one per
event, in namespace `emr` (POWERTOOLS_METRICS_NAMESPACE). Each is flushed as it
is counted (`single_metric`), so no Lambda handler decorator and no context are
needed: the local server and tests emit the same lines as Lambda does.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "emr")

logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emr"),
    level=os.environ.get("LOG_LEVEL", "INFO"),
)


def count(name: str, **dimensions: str) -> None:
    """One EMF line: `name` += 1, with these dimensions (low-cardinality values only).
    Imported on first use: most requests never count anything, and cold starts
    should not pay for the metrics module."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
