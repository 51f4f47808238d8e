"""Python client for the Serverless Deployment Broker: deploy Azure AI Foundry models as serverless API deployments.

    from azure.identity import DefaultAzureCredential
    from deployment_broker_client import BrokerClient

    client = BrokerClient(endpoint, DefaultAzureCredential(), scope="api://<app>/.default", function_key=key)
    deployment = client.begin_deploy(workspace_id, "azureml://registries/azureml/models/Phi-4").result()

The `broker` command (deployment_broker_client.cli) does the same from a shell.
"""

from deployment_broker_client._client import BrokerClient
from deployment_broker_client._exceptions import (
    BrokerAuthenticationError,
    BrokerConflictError,
    BrokerError,
    BrokerNotFoundError,
    RunUnsuccessfulError,
)
from deployment_broker_client._models import (
    TERMINAL_RUN_STATUSES,
    ApprovalNeed,
    Condition,
    CrossRegion,
    CrossRegionHub,
    Deployment,
    DeploymentPhase,
    DeploymentRequester,
    DeploymentSpec,
    DeploymentStatus,
    Endpoint,
    Finding,
    FindingAction,
    JoinedRequest,
    KeyRotation,
    KeyRotationStatus,
    KeyType,
    ModelAvailability,
    ModelListing,
    ModelRegion,
    PolicyVerdict,
    Problem,
    Run,
    RunError,
    RunStatus,
    RunStep,
    SecretIds,
    WhatIf,
    WhatIfCheck,
    WhatIfPlanStep,
    WhatIfVerdict,
    WorkspaceFit,
)
from deployment_broker_client._polling import RunPollingMethod
from deployment_broker_client._version import VERSION

__version__ = VERSION

__all__ = [
    "TERMINAL_RUN_STATUSES",
    "ApprovalNeed",
    "BrokerAuthenticationError",
    "BrokerClient",
    "BrokerConflictError",
    "BrokerError",
    "BrokerNotFoundError",
    "Condition",
    "CrossRegion",
    "CrossRegionHub",
    "Deployment",
    "DeploymentPhase",
    "DeploymentRequester",
    "DeploymentSpec",
    "DeploymentStatus",
    "Endpoint",
    "Finding",
    "FindingAction",
    "JoinedRequest",
    "KeyRotation",
    "KeyRotationStatus",
    "KeyType",
    "ModelAvailability",
    "ModelListing",
    "ModelRegion",
    "PolicyVerdict",
    "Problem",
    "Run",
    "RunError",
    "RunPollingMethod",
    "RunStatus",
    "RunStep",
    "RunUnsuccessfulError",
    "SecretIds",
    "WhatIf",
    "WhatIfCheck",
    "WhatIfPlanStep",
    "WhatIfVerdict",
    "WorkspaceFit",
]
