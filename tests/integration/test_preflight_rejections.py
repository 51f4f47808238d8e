"""Preflight rejections that depend on configuration or on the broker's own roles, through the local host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, broker_on

pytestmark = pytest.mark.integration

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


@pytest.fixture(scope="module")
def configured_broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    """A broker whose policy approves Microsoft and DeepSeek registries only, in demo-project only."""
    with running_emulator() as emulator:
        workspace = emulator.workspace_path("demo-project")
        with broker_on(
            emulator,
            azurite.connection_string,
            tmp_path_factory.mktemp("configured") / "host.log",
            BROKER_APPROVED_REGISTRIES="azureml,azureml-deepseek",
            BROKER_ALLOWED_WORKSPACES=workspace,
        ) as broker:
            yield broker


@pytest.fixture(scope="module")
def underprivileged_broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    """A broker identity that holds only Reader on the resource group (and its Key Vault role)."""
    scenario = load_scenario_document()
    broker_id = scenario["brokerPrincipalId"]
    scenario["roleAssignments"] = [
        assignment
        for assignment in scenario["roleAssignments"]
        if not (assignment["principalId"] == broker_id and assignment["roleName"] == "Azure AI Developer")
    ]
    with (
        running_emulator(scenario) as emulator,
        broker_on(emulator, azurite.connection_string, tmp_path_factory.mktemp("weak") / "host.log") as broker,
    ):
        yield broker


def _post(broker: Broker, **body: object):
    return broker.call("POST", "/api/deployments", caller=broker.requester, json=body)


def test_a_model_outside_the_approved_registries_is_rejected(configured_broker):
    response = _post(configured_broker, workspaceId=configured_broker.workspace_id(), modelId=COHERE)

    assert response.status_code == 403
    problem = response.json()
    assert problem["type"].endswith("/model-not-approved")
    assert "azureml-cohere" in problem["detail"]


def test_a_workspace_outside_the_allow_list_is_rejected(configured_broker):
    response = _post(
        configured_broker, workspaceId=configured_broker.workspace_id("demo-project-westeurope"), modelId=DEEPSEEK
    )

    assert response.status_code == 403
    problem = response.json()
    assert problem["type"].endswith("/workspace-not-allowed")
    assert "demo-project-westeurope" in problem["detail"]


def test_an_invalid_endpoint_name_is_rejected_before_any_azure_call(configured_broker):
    configured_broker.emulator.admin.clear_requests()

    response = _post(
        configured_broker, workspaceId=configured_broker.workspace_id(), modelId=DEEPSEEK, endpointName="9-lives"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "endpointName"
    assert configured_broker.emulator.admin.requests()["total"] == 0


def test_a_broker_without_its_role_is_rejected_listing_the_missing_actions(underprivileged_broker):
    workspace_id = underprivileged_broker.workspace_id()

    response = _post(underprivileged_broker, workspaceId=workspace_id, modelId=DEEPSEEK)

    assert response.status_code == 403
    problem = response.json()
    assert problem["type"].endswith("/broker-permissions-missing")
    missing = {entry["scopeId"].lower(): entry["missingActions"] for entry in problem["missingActions"]}
    assert "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write" in missing[workspace_id.lower()]
    assert "Azure AI Developer" in problem["detail"]
