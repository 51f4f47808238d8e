import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from devstack.emulator.testing import running_emulator
from shared.adapters.arm import ArmClient, _retry_after
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


def test_the_poll_delay_comes_from_retry_after_ms_for_sub_second_timings(ml, workspace):
    operation = ml.begin_create_endpoint(
        workspace, "phi-ep", model_id=PHI, location="eastus2", content_safety="Enabled", tags={}
    )

    assert operation.retry_after == 0.1
    assert ml.get_operation(operation).retry_after in {0.1, None}


def test_the_poll_delay_comes_from_whole_second_retry_after_as_arm_sends_it(monkeypatch):
    with running_emulator(timings={"lroSeconds": None, "retryAfterMs": 2000}) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        ml = MachineLearningAdapter(ArmClient(emulator.arm_url, emulator.credential()))
        workspace = emulator.workspace_path("demo-project")
        operation = ml.begin_create_endpoint(
            workspace, "phi-ep", model_id=PHI, location="eastus2", content_safety="Enabled", tags={}
        )
        progress = ml.get_operation(operation)
        deleting = ml.begin_delete_endpoint(workspace, "phi-ep")

    assert (operation.retry_after, progress.retry_after, deleting.retry_after) == (2.0, 2.0, 2.0)
    assert not progress.done


class _Answer:
    def __init__(self, **headers: str) -> None:
        self.headers = headers


def test_retry_after_forms_arm_may_send():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert _retry_after(_Answer(**{"Retry-After": "12"})) == 12
    assert _retry_after(_Answer(**{"retry-after-ms": "250", "Retry-After": "1"})) == 0.25
    assert _retry_after(_Answer(**{"x-ms-retry-after-ms": "1500"})) == 1.5
    assert 25 < _retry_after(_Answer(**{"Retry-After": soon})) <= 30
    assert _retry_after(_Answer(**{"Retry-After": "0"})) is None
    assert _retry_after(_Answer(**{"Retry-After": "soon"})) is None
    assert _retry_after(_Answer()) is None
