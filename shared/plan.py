"""What a deployment consists of in Azure, derived from its request: the project the endpoint lives in, the endpoint
and Marketplace subscription names, and the Key Vault secret names of its keys. Every operation (deploy, repair,
delete, rotate) re-derives the same plan from the request its run stores, so none has to remember names.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.azure_ids import WorkspaceId
from shared.catalog import ModelCatalog, ModelClassification
from shared.model_ids import ModelId
from shared.naming import SecretNames, derive_endpoint_name, key_vault_secret_names, marketplace_subscription_name
from shared.requests import DeploymentRequest


@dataclass(frozen=True)
class DeploymentPlan:
    """What the workflow will create, decided once at intake and re-derivable from the request."""

    workspace: WorkspaceId
    model: ModelId
    classification: ModelClassification
    endpoint_name: str
    subscription_name: str | None
    secret_names: SecretNames

    @property
    def endpoint_id(self) -> str:
        return self.workspace.serverless_endpoint_id(self.endpoint_name)


def plan_for(request: DeploymentRequest, catalog: ModelCatalog, *, target: WorkspaceId | None = None) -> DeploymentPlan:
    """The plan for a request; raises InvalidNameError when no valid endpoint name can be derived.

    `target` is the hub project that holds a cross-region deployment; the endpoint is still named after the
    requesting project, so it stays recognisable (and unique per region) wherever it lives.
    """
    workspace, model = target or request.workspace, request.model
    classification = catalog.classify(model)
    endpoint_name = request.endpoint_name or derive_endpoint_name(model, request.workspace)
    return DeploymentPlan(
        workspace=workspace,
        model=model,
        classification=classification,
        endpoint_name=endpoint_name,
        subscription_name=(
            marketplace_subscription_name(model) if classification.requires_marketplace_subscription else None
        ),
        secret_names=key_vault_secret_names(workspace, endpoint_name),
    )
