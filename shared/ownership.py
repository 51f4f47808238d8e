"""How the broker marks what it made: the tag on every endpoint and key secret it creates.

Teardown, remediation and preflight all refuse to touch an endpoint without this tag, so it is defined once.
"""

from __future__ import annotations

from collections.abc import Mapping

MANAGED_BY_TAG = "managedBy"
MANAGED_BY_VALUE = "serverless-deployment-broker"


def ownership_tags() -> dict[str, str]:
    return {MANAGED_BY_TAG: MANAGED_BY_VALUE}


def is_broker_managed(tags: Mapping[str, str]) -> bool:
    return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE
