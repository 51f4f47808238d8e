"""The hygiene scan built by the composition root, pointed at the emulator (ARM, Key Vault) and Azurite.

Resources are made the way the broker makes them (its adapters, its tags, its secret names), and operations are
completed through the emulator's admin API instead of waited for.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.storage.queue import QueueClient

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import EmulatorHandle
from shared.adapters.arm import ArmClient
from shared.adapters.keyvault import KeyVaultAdapter
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.adapters.run_store import RunStore
from shared.adapters.tables import DocumentTable
from shared.azure_ids import WorkspaceId
from shared.config import Settings
from shared.deployment import Deployment
from shared.hygiene.composition import build_hygiene_scanner
from shared.hygiene.findings import FindingRecord
from shared.hygiene.scan import HygieneScanner
from shared.hygiene.settings import HygieneSettings
from shared.hygiene.store import FindingStore
from shared.key_secrets import KEY_FINGERPRINT_TAG, key_fingerprint
from shared.naming import SecretNames, key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE

from .fakes import Clock, deployment

LLAMA = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
PHI = "azureml://registries/azureml/models/Phi-4"
LOCKED_SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"
FAST_TIMINGS = {"lroSeconds": 60, "retryAfterMs": 50}


def scenario() -> dict[str, Any]:
    """The demo scenario, a catalog of three models, and a workspace in a subscription the broker has no role in."""
    document = load_scenario_document()
    locations = ["eastus2", "westeurope"]
    document["models"] = [
        {"modelId": LLAMA, "locations": locations},
        {"modelId": COHERE, "locations": locations},
        {"modelId": PHI, "soldDirectly": True, "locations": locations},
    ]
    document["subscriptions"] = [
        *document["subscriptions"],
        {"subscriptionId": LOCKED_SUBSCRIPTION, "resourceGroups": [{"name": "rg-locked", "location": "eastus2"}]},
    ]
    document["workspaces"] = [
        *document["workspaces"],
        {
            "subscriptionId": LOCKED_SUBSCRIPTION,
            "resourceGroup": "rg-locked",
            "name": "locked-project",
            "location": "eastus2",
        },
    ]
    document["timings"] = FAST_TIMINGS
    return document


@dataclass
class EmulatedBroker:
    emulator: EmulatorHandle
    connection_string: str
    clock: Clock = field(default_factory=Clock)
    sleeps: list[float] = field(default_factory=list)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def __post_init__(self) -> None:
        credential = self.emulator.credential()
        arm = ArmClient(self.emulator.arm_url, credential, retry_total=0)
        self.ml = MachineLearningAdapter(arm)
        self.vault = KeyVaultAdapter(self.emulator.vault_url, credential)
        self.alerts_queue = f"hygiene-alerts-{self.suffix}"
        self._alerts = QueueClient.from_connection_string(self.connection_string, self.alerts_queue)
        self.received: list[dict[str, Any]] = []

    def workspace(self, name: str = "demo-project") -> str:
        if name == "locked-project":
            return (
                f"/subscriptions/{LOCKED_SUBSCRIPTION}/resourceGroups/rg-locked/providers/"
                "Microsoft.MachineLearningServices/workspaces/locked-project"
            )
        return self.emulator.workspace_path(name)

    def settings(self) -> Settings:
        return Settings.from_env(
            {
                "AzureWebJobsStorage": self.connection_string,
                "AZURE_RESOURCE_MANAGER_URL": self.emulator.arm_url,
                "AZURE_KEYVAULT_URL": self.emulator.vault_url,
                "DEPLOYMENT_RUNS_TABLE": f"runs{self.suffix}",
            }
        )

    def hygiene_settings(self, **env: str) -> HygieneSettings:
        return HygieneSettings.from_env(
            {
                "HYGIENE_FINDINGS_TABLE": f"findings{self.suffix}",
                "HYGIENE_ALERTS_QUEUE": self.alerts_queue,
                "HYGIENE_RETRY_BACKOFF_SECONDS": "0.01",
                "HYGIENE_DRY_RUN": "false",
                **env,
            }
        )

    def scanner(self, **env: str) -> HygieneScanner:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            time.sleep(seconds)

        return build_hygiene_scanner(
            self.settings(),
            self.hygiene_settings(**env),
            credential=self.emulator.credential(),
            clock=self.clock,
            sleep=sleep,
        )

    @property
    def store(self) -> FindingStore:
        return FindingStore(DocumentTable.open(self.settings().storage, f"findings{self.suffix}"))

    def findings(self, rule: str) -> list[FindingRecord]:
        return self.store.query(rule=rule, page_size=100).records

    @property
    def runs(self) -> RunStore:
        """The run store in Azurite the scan reads deployments from and writes them to."""
        return RunStore(DocumentTable.open(self.settings().storage, f"runs{self.suffix}"))

    def record_deployment(self, workspace: str, name: str, *, tickets: tuple[str, ...] = ()) -> Deployment:
        """The Ready Deployment resource the broker keeps for endpoint `name`, as a Succeeded run leaves it."""
        workspace_id = self.workspace(workspace)
        endpoint = self.ml.get_endpoint(workspace_id, name)
        assert endpoint is not None, name
        return self.runs.create_deployment(deployment(workspace_id, endpoint, tickets=tickets)).deployment

    def deployment(self, deployment_id: str) -> Deployment:
        stored = self.runs.get_deployment(deployment_id)
        assert stored is not None, deployment_id
        return stored.deployment

    def new_alerts(self) -> list[tuple[str, str, str]]:
        """(kind, rule, subject) of the alerts put on the queue since the last call."""
        fresh = []
        while batch := list(self._alerts.receive_messages(max_messages=32, visibility_timeout=60)):
            for message in batch:
                fresh.append(json.loads(base64.b64decode(message.content)))
                self._alerts.delete_message(message)
        self.received += fresh
        return [(event["type"].rsplit(".", 1)[-1], event["data"]["rule"], event["subject"]) for event in fresh]

    # -- making resources the broker's way -------------------------------------------------------------------------

    def subscribe(self, workspace: str, name: str, model_id: str) -> None:
        self.ml.begin_create_subscription(self.workspace(workspace), name, model_id=model_id)
        self.emulator.admin.complete_operations()

    def deploy(self, workspace: str, name: str, model_id: str, *, managed: bool = True) -> SecretNames | None:
        """An endpoint, and for a broker-made one its two keys stored in Key Vault as the workflow stores them."""
        workspace_id = self.workspace(workspace)
        location = self.ml.get_workspace(workspace_id).location
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": "run-1"} if managed else {"owner": "platform-team"}
        self.ml.begin_create_endpoint(
            workspace_id, name, model_id=model_id, location=location, content_safety="Enabled", tags=tags
        )
        self.emulator.admin.complete_operations()
        if not managed:
            return None
        names = key_vault_secret_names(WorkspaceId.parse(workspace_id), name)
        keys = self.ml.list_keys(workspace_id, name)
        for key_type, secret, value in (
            ("primary", names.primary, keys.primary),
            ("secondary", names.secondary, keys.secondary),
        ):
            self.vault.set_secret(
                secret,
                value,
                content_type="application/vnd.azure-ai-serverless-endpoint-key",
                tags={
                    "workspace": workspace_id,
                    "endpoint": name,
                    "model": model_id,
                    "run": "run-1",
                    "keyType": key_type,
                    MANAGED_BY_TAG: MANAGED_BY_VALUE,
                    KEY_FINGERPRINT_TAG: key_fingerprint(value),
                },
            )
        return names

    def endpoint_id(self, workspace: str, name: str) -> str:
        return f"{self.workspace(workspace)}/serverlessEndpoints/{name}"
