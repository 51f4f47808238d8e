"""The baseline: the seed document's blocking SDK flow, run as one function would run it, against the emulator.

azure-ai-ml's MLClient subscribes the project (`begin_create_or_update(...).result()`), creates the serverless
endpoint the same way, reads its keys with `get_keys`, and azure-keyvault-secrets writes both keys. Every step
blocks, so the function is billed for the whole wall time. Only the credential differs from the document (the
emulator's managed identity instead of a browser sign-in), and the vault client accepts the loopback vault's
challenge, as the broker's adapter does.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from azure.ai.ml import MLClient
from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from shared.azure_ids import WorkspaceId

# The emulator's variables the SDKs read from the environment: ARM and ML endpoints, managed identity, CA bundle.
ENVIRONMENT_PREFIXES = ("AZURE", "AZUREML", "IDENTITY", "MSI", "REQUESTS_CA_BUNDLE", "SSL_CERT")


@dataclass(frozen=True)
class BaselineRun:
    seconds: float
    """Wall time of the blocking flow, which is also what such a function is billed."""
    subscription_status: str
    provisioning_state: str


def run_seed_flow(env: dict[str, str], workspace_id: str, model_id: str) -> BaselineRun:
    """Subscribe, create the endpoint, read its keys and store them, each call blocking until done."""
    # Endpoint names are unique per region, not per workspace, so each run takes a new one.
    endpoint_name = f"seed-flow-{uuid.uuid4().hex[:8]}"
    workspace = WorkspaceId.parse(workspace_id)
    with _environment(env):
        started = time.perf_counter()
        credential = ManagedIdentityCredential()
        client = MLClient(
            credential=credential,
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.name,
        )
        subscription = client.marketplace_subscriptions.begin_create_or_update(
            MarketplaceSubscription(model_id=model_id, name=model_id.rsplit("/", 1)[-1])
        ).result()
        endpoint = client.serverless_endpoints.begin_create_or_update(
            ServerlessEndpoint(name=endpoint_name, model_id=model_id)
        ).result()
        keys = client.serverless_endpoints.get_keys(endpoint_name)
        vault = SecretClient(env["AZURE_KEYVAULT_URL"], credential, verify_challenge_resource=False)
        vault.set_secret(f"{endpoint_name}-primary", keys.primary_key)
        vault.set_secret(f"{endpoint_name}-secondary", keys.secondary_key)
        seconds = time.perf_counter() - started
    return BaselineRun(seconds, subscription.status, endpoint.provisioning_state)


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """The emulator's variables in os.environ for the duration (the SDKs read them there), then the old values."""
    chosen = {name: value for name, value in env.items() if name.startswith(ENVIRONMENT_PREFIXES)}
    previous = {name: os.environ.get(name) for name in chosen}
    os.environ.update(chosen)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
