"""Logger and metrics singletons (aws-lambda-powertools).

Log lines carry ids, routes, statuses and timings - never bodies, query values
or anything else that could hold PHI (a test searches every captured log line
for a patient's name).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emr"),
    level=os.environ.get("LOG_LEVEL", "INFO"),
)
