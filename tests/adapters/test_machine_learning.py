import time

import pytest

from shared.adapters.machine_learning import MachineLearningAdapter
from shared.azure_errors import AzureCallError
from shared.ports import Operation

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
PHI = "azureml://registries/azureml/models/Phi-4"


@pytest.fixture
def ml(arm, emulator) -> MachineLearningAdapter:
    return MachineLearningAdapter(arm)


@pytest.fixture
def workspace(emulator) -> str:
    return emulator.workspace_path("demo-project")


def _finish(ml: MachineLearningAdapter, operation: Operation | None) -> None:
    deadline = time.monotonic() + 10
    while operation is not None:
        progress = ml.get_operation(operation)
        if progress.done:
            assert progress.succeeded, progress
            return
        assert time.monotonic() < deadline
        time.sleep(progress.retry_after or 0.1)


def test_workspace_reads_back_its_region(ml, workspace):
    assert ml.get_workspace(workspace).location == "eastus2"


def test_endpoint_lifecycle_with_content_safety_tags_keys_and_regeneration(ml, workspace):
    operation = ml.begin_create_endpoint(
        workspace, "phi-ep", model_id=PHI, location="eastus2", content_safety="Disabled", tags={"team": "a"}
    )
    assert operation is not None
    assert operation.retry_after
    _finish(ml, operation)

    endpoint = ml.get_endpoint(workspace, "phi-ep")
    assert (endpoint.provisioning_state, endpoint.endpoint_state, endpoint.tags) == (
        "Succeeded",
        "Online",
        {"team": "a"},
    )
    assert [item.name for item in ml.list_endpoints(workspace)] == ["phi-ep"]
    before = ml.list_keys(workspace, "phi-ep")
    _finish(ml, ml.regenerate_key(workspace, "phi-ep", "secondary"))
    after = ml.list_keys(workspace, "phi-ep")
    assert after.primary == before.primary
    assert after.secondary != before.secondary
    assert before.primary not in repr(before)

    _finish(ml, ml.begin_delete_endpoint(workspace, "phi-ep"))
    assert ml.get_endpoint(workspace, "phi-ep") is None
    assert ml.begin_delete_endpoint(workspace, "phi-ep") is None


def test_a_marketplace_subscription_reads_back_subscribed(ml, workspace):
    _finish(ml, ml.begin_create_subscription(workspace, "cohere-sub", model_id=COHERE))

    subscription = ml.get_subscription(workspace, "cohere-sub")

    assert ml.list_subscriptions(workspace) == [subscription]
    assert (subscription.model_id, subscription.status, subscription.provisioning_state) == (
        COHERE,
        "Subscribed",
        "Succeeded",
    )
    assert ml.get_subscription(workspace, "absent") is None


def test_azure_errors_keep_their_code_and_message(ml, workspace):
    with pytest.raises(AzureCallError) as raised:
        ml.begin_create_endpoint(
            workspace, "cohere-ep", model_id=COHERE, location="eastus2", content_safety="Enabled", tags={}
        )

    error = raised.value
    assert (error.status, error.code, error.transient) == (400, "UserError", False)
    assert error.message.startswith("Serverless offer ")


def test_a_throttled_call_surfaces_as_transient_with_its_retry_after(ml, workspace, emulator):
    emulator.admin.add_fault(pathRegex="/serverlessEndpoints$", method="GET", status=429, retryAfter=1, count=5)

    with pytest.raises(AzureCallError) as raised:
        ml.list_endpoints(workspace)

    assert raised.value.transient
    assert raised.value.retry_after == 1
