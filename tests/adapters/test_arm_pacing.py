"""The ARM pipeline against the emulator's throttling: a 429 comes straight back with ARM's Retry-After (nothing
sleeps on it in a function), and every write's answer tells the pacer what ARM has left."""

import pytest

from shared.adapters.arm import ArmClient
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.azure_errors import AzureCallError
from shared.pacing import WritePacer

MODEL = "azureml://registries/azureml/models/Phi-4"


@pytest.fixture
def pacer() -> WritePacer:
    return WritePacer(reserve=0, refill_per_second=0.01)


@pytest.fixture
def ml(emulator, pacer) -> MachineLearningAdapter:
    return MachineLearningAdapter(ArmClient(emulator.arm_url, emulator.credential(), pacer=pacer))


def create(ml: MachineLearningAdapter, workspace: str) -> None:
    """A write: the same endpoint PUT again (ARM counts every PUT, an update too)."""
    ml.begin_create_endpoint(
        workspace, "paced", model_id=MODEL, location="eastus2", content_safety="Enabled", tags={"purpose": "pacing"}
    )


def test_a_throttled_write_is_refused_at_once_with_arms_retry_after(emulator, ml):
    emulator.admin.set_throttling(enabled=True, writes={"capacity": 1, "refillPerSecond": 0.01})
    workspace = emulator.workspace_path("demo-project")
    create(ml, workspace)
    emulator.admin.clear_requests()

    with pytest.raises(AzureCallError) as refused:
        create(ml, workspace)

    assert (refused.value.status, refused.value.code, refused.value.transient) == (
        429,
        "SubscriptionRequestsThrottled",
        True,
    )
    assert refused.value.retry_after == 100
    # Sent once: the pipeline neither retried nor waited the 100 s out.
    entries = emulator.admin.requests()["entries"]
    assert [(entry["method"], entry["status"]) for entry in entries] == [("PUT", 429)]


def test_every_write_answer_feeds_the_pacer(emulator, ml, pacer):
    emulator.admin.set_throttling(enabled=True, writes={"capacity": 3, "refillPerSecond": 0.01})
    workspace = emulator.workspace_path("demo-project")
    subscription = workspace.split("/")[2]
    assert pacer.admit(subscription, "before/any") is None  # nothing heard yet: not paced

    create(ml, workspace)
    create(ml, workspace)

    # ARM reported 1 write left after the second; the third goes, a fourth would be refused, so it waits.
    assert pacer.admit(subscription, "third/provision") is None
    create(ml, workspace)
    assert pacer.admit(subscription, "fourth/provision") is not None
