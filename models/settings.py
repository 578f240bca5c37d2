"""Storage settings, read once from the environment.

The API and every other function configure storage only through these
variables, which `infra/template.json` sets on each function and the local
stack exports (devstack/provision.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class StorageSettings:
    table_name: str
    data_key_id: str
    # Data classes sealed under their own KMS key (class -> key id); the rest use
    # data_key_id. Psychotherapy notes (45 CFR 164.501) have their own key, so that
    # a grant on the ordinary key never opens them.
    class_key_ids: dict[str, str]
    region: str
    endpoint_url: str | None
    data_key_max_age_s: float
    data_key_max_uses: int


@lru_cache(maxsize=1)
def storage_settings() -> StorageSettings:
    return StorageSettings(
        table_name=os.environ.get("EMR_TABLE_NAME", "emr-local"),
        data_key_id=os.environ.get("EMR_DATA_KEY_ID", "alias/emr-data"),
        class_key_ids={
            "psychotherapy": os.environ.get(
                "EMR_PSYCHOTHERAPY_KEY_ID", "alias/emr-psychotherapy"
            ),
        },
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        data_key_max_age_s=float(os.environ.get("EMR_DATA_KEY_MAX_AGE_S", "300")),
        data_key_max_uses=int(os.environ.get("EMR_DATA_KEY_MAX_USES", "10000")),
    )
