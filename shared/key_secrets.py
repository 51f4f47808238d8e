"""How endpoint keys are kept in Key Vault: one secret per key type, a new version per key value.

The dual-key rotation pattern (azure-facts §3) reads three tags on each version: `CredentialId` (which key the
version holds), `ProviderAddress` (the endpoint's resource id) and `ValidityPeriodDays`; the version's `exp` is
set from the validity period so that expiry can trigger the next rotation.

Every version the broker writes also carries `keyFingerprint`: a truncated SHA-256 of the key it holds, never the key.
Hygiene compares it with the fingerprint of what listKeys returns, so a drift check reads secret properties (which
need only list rights) instead of secret values. A key is random and long, so its truncated hash gives nothing away.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.plan import DeploymentPlan
from shared.ports import SecretStorePort, StoredSecret

SECRET_CONTENT_TYPE = "application/vnd.azure-ai-serverless-endpoint-key"
MAX_TAG_VALUE = 256
KEY_TYPES = ("primary", "secondary")
KEY_TYPE_TAG = "keyType"
RUN_TAG = "run"
CREDENTIAL_ID_TAG = "CredentialId"
PROVIDER_ADDRESS_TAG = "ProviderAddress"
VALIDITY_TAG = "ValidityPeriodDays"
KEY_FINGERPRINT_TAG = "keyFingerprint"
FINGERPRINT_PREFIX = "sha256:"
# 128 bits: collisions are out of reach, and the tag stays short.
FINGERPRINT_HEX_DIGITS = 32


def key_secret_tags(
    *,
    workspace_id: str,
    endpoint_name: str,
    endpoint_id: str,
    model_id: str,
    run_id: str,
    key_type: str,
    validity_days: int | None,
) -> dict[str, str]:
    """The tags of a key secret's version; the rotation tags only when keys are given a validity period."""
    tags = {
        "workspace": workspace_id,
        "endpoint": endpoint_name,
        "model": model_id,
        RUN_TAG: run_id,
        KEY_TYPE_TAG: key_type,
        MANAGED_BY_TAG: MANAGED_BY_VALUE,
    }
    if validity_days is not None:
        tags |= {CREDENTIAL_ID_TAG: key_type, PROVIDER_ADDRESS_TAG: endpoint_id, VALIDITY_TAG: str(validity_days)}
    return {name: value[:MAX_TAG_VALUE] for name, value in tags.items()}


def store_key(
    secrets: SecretStorePort,
    plan: DeploymentPlan,
    *,
    run_id: str,
    key_type: str,
    value: str,
    validity_days: int | None,
    now: datetime,
) -> StoredSecret:
    """Write one endpoint key as a new version of its secret, tagged and expiring per the validity period."""
    return secrets.set_secret(
        getattr(plan.secret_names, key_type),
        value,
        content_type=SECRET_CONTENT_TYPE,
        tags={
            **key_secret_tags(
                workspace_id=plan.workspace.resource_id,
                endpoint_name=plan.endpoint_name,
                endpoint_id=plan.endpoint_id,
                model_id=plan.model.normalized,
                run_id=run_id,
                key_type=key_type,
                validity_days=validity_days,
            ),
            KEY_FINGERPRINT_TAG: key_fingerprint(value),
        },
        expires_on=key_expiry(now, validity_days),
    )


def key_fingerprint(value: str) -> str:
    """What the `keyFingerprint` tag holds for a key: enough to tell two keys apart, nothing to recover one."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    return FINGERPRINT_PREFIX + digest[:FINGERPRINT_HEX_DIGITS]


def fingerprint_matches(tags: Mapping[str, str], value: str) -> bool | None:
    """Whether a secret version's fingerprint tag names `value`; None when the version has no fingerprint (written
    before fingerprints, or not by the broker), so only its value can tell."""
    recorded = tags.get(KEY_FINGERPRINT_TAG)
    return None if recorded is None else recorded == key_fingerprint(value)


def key_expiry(now: datetime, validity_days: int | None) -> datetime | None:
    return None if validity_days is None else now + timedelta(days=validity_days)


def alternate(key_type: str) -> str:
    """The other key of the pair."""
    return KEY_TYPES[1 - KEY_TYPES.index(key_type)]
