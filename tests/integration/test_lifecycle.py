"""Teardown, key rotation and cross-region deployment end to end: the local host, Azurite and the emulator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from devstack.emulator.catalog import reference_models
from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

CONNECTIONS_API = "2024-10-01"
NEVER = "0 0 0 1 1 *"  # the timers fire only when a test invokes them
HUB = "demo-project"
SPOKE = "demo-project-westeurope"
# Two partner models sold under one Marketplace offer: a project subscribes once and both bill through it.
SHARED_OFFER = {"publisher": "contoso", "offer": "contoso-suite-offer", "plan": "contoso-suite-plan"}
ALPHA = "azureml://registries/contoso-models/models/Alpha-Chat"
BETA = "azureml://registries/contoso-models/models/Beta-Chat"


def _scenario() -> dict[str, Any]:
    document = load_scenario_document()
    suite = [
        {"modelId": model, "requiresMarketplaceSubscription": True, "locations": ["eastus2"], **SHARED_OFFER}
        for model in (ALPHA, BETA)
    ]
    document["models"] = [*reference_models(), *suite]
    spoke = next(item for item in document["workspaces"] if item["name"] == SPOKE)
    requester = next(item for item in document["principals"] if item["displayName"] == "requester")
    scope = f"/subscriptions/{spoke['subscriptionId']}/resourceGroups/{spoke['resourceGroup']}"
    document["roleAssignments"].append(
        {
            "principalId": requester["objectId"],
            "roleName": "Azure AI Developer",
            "scope": f"{scope}/providers/Microsoft.MachineLearningServices/workspaces/{SPOKE}",
        }
    )
    document["timings"] = {"lroSeconds": 0.5, "retryAfterMs": 200}
    return document


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    folder = tmp_path_factory.mktemp("lifecycle")
    # The suite's two models exist only in this scenario, so the broker's catalog learns them from an override.
    overrides = folder / "catalog-overrides.json"
    suite = [
        {"modelId": model, "requiresMarketplaceSubscription": True, "locations": ["eastus2"]} for model in (ALPHA, BETA)
    ]
    overrides.write_text(json.dumps({"models": suite}))
    with (
        running_emulator(_scenario()) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            folder / "host.log",
            BROKER_MODEL_CATALOG_OVERRIDES=str(overrides),
            KEY_ROTATION_SCHEDULE=NEVER,
            HYGIENE_SCHEDULE=NEVER,
            KEY_VALIDITY_DAYS="90",
            KEY_ROTATION_WINDOW_DAYS="30",
            BROKER_CROSS_REGION_HUBS=f"eastus2={emulator.workspace_path(HUB)}",
        ) as broker,
    ):
        yield broker


def _vault(broker: Broker) -> SecretClient:
    emulator = broker.emulator
    return SecretClient(
        emulator.vault_url, emulator.credential(), verify_challenge_resource=False, connection_verify=emulator.ca_bundle
    )


def _secret_name(secret_id: str) -> str:
    return secret_id.split("/secrets/")[1].split("/", maxsplit=1)[0]


def _versions(broker: Broker, name: str) -> int:
    return len(list(_vault(broker).list_properties_of_secret_versions(name)))


def _keys(broker: Broker, endpoint_id: str) -> dict[str, str]:
    return broker.emulator.arm().request("POST", f"{endpoint_id}/listKeys").json()


def _deploy(broker: Broker, model_id: str, workspace: str = HUB, **extra: Any) -> dict[str, Any]:
    body = {"workspaceId": broker.workspace_id(workspace), "modelId": model_id, **extra}
    response = broker.call("POST", "/api/deployments", caller=broker.requester, json=body)
    assert response.status_code == 202, response.text
    run = broker.wait_for_run(response.json()["id"], timeout=25)
    assert run["status"] == "Succeeded", run
    return run


def _delete(broker: Broker, run: dict[str, Any], **params: str) -> requests.Response:
    """DELETE the deployment `run` made."""
    return broker.call("DELETE", f"/api/deployments/{run['deploymentId']}", caller=broker.requester, params=params)


def _statuses(run: dict[str, Any]) -> list[str]:
    return [step["status"] for step in run["steps"]]


def test_teardown_deletes_endpoint_secrets_and_subscription_and_a_second_delete_answers_with_the_first(broker):
    run = _deploy(broker, "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024")
    workspace_id, arm = broker.workspace_id(), broker.emulator.arm()
    subscriptions = arm.request("GET", f"{workspace_id}/marketplaceSubscriptions").json()["value"]
    [subscription] = [item for item in subscriptions if item["properties"]["modelId"].endswith("plus-08-2024")]

    response = _delete(broker, run, deleteSubscription="true")

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["operation"], accepted["deploymentId"], accepted["deleteSubscription"]) == (
        "delete",
        run["deploymentId"],
        True,
    )
    assert response.headers["Location"].endswith(f"/api/deployments/{run['deploymentId']}")
    assert response.headers["Operation-Location"].endswith(f"/api/runs/{accepted['id']}")
    deleted = broker.wait_for_run(accepted["id"], timeout=20)
    assert deleted["status"] == "Deleted", deleted
    assert _statuses(deleted) == ["Accepted", "Validating", "Deleting", "Deleted"]
    assert arm.request("GET", run["endpoint"]["id"]).status_code == 404
    assert arm.request("GET", subscription["id"]).status_code == 404
    vault = _vault(broker)
    for secret_id in run["secretIds"].values():
        with pytest.raises(ResourceNotFoundError):
            vault.get_secret(_secret_name(secret_id))
        assert vault.get_deleted_secret(_secret_name(secret_id)).recovery_id  # soft-deleted, recoverable
    deployment = broker.deployment(run["deploymentId"])
    assert (deployment["status"]["phase"], deployment["status"]["deleteRunId"]) == ("Deleted", deleted["id"])
    events = broker.events(timeout=10, until=lambda seen: any(e["subject"] == deleted["id"] for e in seen))
    assert [e["type"] for e in events if e["subject"] == deleted["id"]][-1].endswith(".deleted")

    again = _delete(broker, run, deleteSubscription="true")

    assert again.status_code == 200, again.text
    assert again.json()["status"]["deleteRunId"] == deleted["id"]
    assert [item["id"] for item in broker.runs(deploymentId=run["deploymentId"]) if item["operation"] == "delete"] == [
        deleted["id"]
    ]


def test_an_endpoint_deleted_out_of_band_is_torn_down_all_the_same(broker):
    run = _deploy(broker, "azureml://registries/azureml/models/Phi-4")
    arm = broker.emulator.arm()
    assert arm.request("DELETE", run["endpoint"]["id"]).status_code == 202
    broker.emulator.admin.complete_operations()
    assert arm.request("GET", run["endpoint"]["id"]).status_code == 404

    response = _delete(broker, run)

    assert response.status_code == 202, response.text
    deleted = broker.wait_for_run(response.json()["id"], timeout=15)
    assert deleted["status"] == "Deleted", deleted
    with pytest.raises(ResourceNotFoundError):
        _vault(broker).get_secret(_secret_name(run["secretIds"]["primary"]))


def test_a_queue_message_of_type_delete_tears_the_deployment_down_and_answers_with_an_event(broker):
    model = "azureml://registries/azureml/models/Phi-4-multimodal-instruct"
    run = _deploy(broker, model)
    ticket = f"INC-{uuid.uuid4().hex[:8]}"

    broker.send_request_message(
        {
            "type": "delete",
            "workspaceId": broker.workspace_id(),
            "modelId": model,
            "requestedBy": broker.requester,
            "ticket": ticket,
        }
    )

    events = broker.events(
        timeout=20,
        until=lambda seen: any(e["type"].endswith(".deleted") and e["data"]["ticket"] == ticket for e in seen),
    )
    deleted = next(e for e in events if e["type"].endswith(".deleted") and e["data"]["ticket"] == ticket)
    delete_run = broker.run(deleted["subject"])
    assert (delete_run["operation"], delete_run["deploymentId"]) == ("delete", run["deploymentId"])
    assert broker.emulator.arm().request("GET", run["endpoint"]["id"]).status_code == 404


def test_deleting_a_subscription_other_endpoints_use_is_refused_naming_them(broker):
    run = _deploy(broker, ALPHA)
    workspace_id, arm = broker.workspace_id(), broker.emulator.arm()
    beta = arm.request(
        "PUT",
        f"{workspace_id}/serverlessEndpoints/beta-by-hand",
        body={
            "location": "eastus2",
            "sku": {"name": "Consumption"},
            "properties": {"modelSettings": {"modelId": BETA}},
        },
    )
    assert beta.status_code in (200, 201), beta.text

    refused = _delete(broker, run, deleteSubscription="true")

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/subscription-in-use")
    assert problem["dependentEndpoints"] == ["beta-by-hand"]
    assert "beta-by-hand" in problem["detail"]
    assert broker.run(problem["runId"])["status"] == "Rejected"
    assert arm.request("GET", run["endpoint"]["id"]).status_code == 200
    assert _vault(broker).get_secret(_secret_name(run["secretIds"]["primary"])).value

    response = _delete(broker, run)

    assert broker.wait_for_run(response.json()["id"], timeout=15)["status"] == "Deleted"
    subscriptions = arm.request("GET", f"{workspace_id}/marketplaceSubscriptions").json()["value"]
    assert [item["name"] for item in subscriptions if item["properties"]["modelId"] == ALPHA] == [
        "Alpha-Chat-subscription"
    ]


def _rotate(broker: Broker, run: dict[str, Any], key_type: str) -> dict[str, Any]:
    path = f"/api/deployments/{run['deploymentId']}/rotate-keys"
    response = broker.call("POST", path, caller=broker.requester, json={"keyType": key_type})
    assert response.status_code == 202, response.text
    assert response.headers["Operation-Location"].endswith(f"/api/runs/{run['id']}")
    return _finished_rotation(broker, run["id"], response.json()["id"])


def _finished_rotation(broker: Broker, run_id: str, rotation_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = broker.run(run_id)
        rotation = next(item for item in run["keyRotations"] if item["id"] == rotation_id)
        return rotation if rotation["status"] in ("Rotated", "Failed") else None

    return until(finished)


@pytest.mark.parametrize(
    ("model", "regenerate_keys_async"),
    [
        ("azureml://registries/azureml/models/Phi-4-reasoning", False),
        ("azureml://registries/azureml/models/Phi-4-mini-instruct", True),
    ],
    ids=["regenerate-answers-200", "regenerate-answers-202"],
)
def test_rotating_one_key_changes_exactly_that_key_and_that_secret(broker, model, regenerate_keys_async):
    run = _deploy(broker, model)
    endpoint_id, vault = run["endpoint"]["id"], _vault(broker)
    names = {key_type: _secret_name(run["secretIds"][key_type]) for key_type in ("primary", "secondary")}
    broker.emulator.admin.call("PUT", "/timings", {"regenerateKeysAsync": regenerate_keys_async})
    try:
        for rotated, untouched in (("primary", "secondary"), ("secondary", "primary")):
            before = _keys(broker, endpoint_id)
            versions = {key_type: _versions(broker, name) for key_type, name in names.items()}

            rotation = _rotate(broker, run, rotated)

            assert rotation["status"] == "Rotated", rotation
            # regenerateKeys answered 202: the rotation waited on the operation through the queue.
            assert (rotation["operationUrl"] is not None) is regenerate_keys_async
            after = _keys(broker, endpoint_id)
            assert after[f"{rotated}Key"] != before[f"{rotated}Key"]
            assert after[f"{untouched}Key"] == before[f"{untouched}Key"]
            assert _versions(broker, names[rotated]) == versions[rotated] + 1
            assert _versions(broker, names[untouched]) == versions[untouched]
            secret = vault.get_secret(names[rotated])
            assert secret.value == after[f"{rotated}Key"]
            assert secret.id == rotation["secretId"]
            tags = secret.properties.tags
            assert (tags["CredentialId"], tags["ProviderAddress"], tags["ValidityPeriodDays"]) == (
                rotated,
                endpoint_id,
                "90",
            )
            expected_expiry = datetime.now(UTC) + timedelta(days=90)
            assert abs(secret.properties.expires_on - expected_expiry) < timedelta(minutes=5)
    finally:
        broker.emulator.admin.call("PUT", "/timings", {"regenerateKeysAsync": False})

    events = broker.events(
        timeout=10,
        until=lambda seen: sum(e["type"].endswith(".keyrotated") and e["subject"] == run["id"] for e in seen) >= 2,
    )
    rotated_events = [e for e in events if e["type"].endswith(".keyrotated") and e["subject"] == run["id"]]
    assert [e["data"]["keyType"] for e in rotated_events] == ["primary", "secondary"]
    assert all(after["primaryKey"] not in str(e) and after["secondaryKey"] not in str(e) for e in rotated_events)


def _invoke_timer(broker: Broker, name: str) -> None:
    host = broker.host
    response = requests.post(
        f"{host.url}/admin/functions/{name}",
        headers={"x-functions-key": host.master_key},
        json={"input": ""},
        timeout=10,
    )
    assert response.status_code == 202, response.text


def test_a_scheduled_rotation_regenerates_the_alternate_of_an_expired_key_once(broker):
    run = _deploy(broker, "azureml://registries/azureml/models/Phi-4-mini-reasoning")
    endpoint_id, vault = run["endpoint"]["id"], _vault(broker)
    primary, secondary = (_secret_name(run["secretIds"][key_type]) for key_type in ("primary", "secondary"))
    vault.update_secret_properties(primary, expires_on=datetime.now(UTC) - timedelta(days=1))
    before = _keys(broker, endpoint_id)
    versions = (_versions(broker, primary), _versions(broker, secondary))

    _invoke_timer(broker, "rotate_expiring_keys")

    def scheduled() -> list[dict[str, Any]]:
        rotations = broker.run(run["id"])["keyRotations"]
        return [item for item in rotations if item["trigger"] == "scheduled" and item["status"] == "Rotated"]

    [rotation] = until(scheduled)
    assert rotation["keyType"] == "secondary"
    assert primary in rotation["reason"]
    assert "expired" in rotation["reason"]
    after = _keys(broker, endpoint_id)
    assert (after["primaryKey"], after["secondaryKey"] != before["secondaryKey"]) == (before["primaryKey"], True)
    assert (_versions(broker, primary), _versions(broker, secondary)) == (versions[0], versions[1] + 1)
    assert vault.get_secret(secondary).value == after["secondaryKey"]

    _invoke_timer(broker, "rotate_expiring_keys")
    broker.host.wait_for_invocations(lambda record: record["function"] == "rotate_expiring_keys", count=2)

    rotations = broker.run(run["id"])["keyRotations"]
    assert len(rotations) == 1, "the same expired secret version must not trigger a second rotation"


def test_cross_region_deploys_in_the_hub_and_connects_the_requesters_project(broker):
    spoke_id, hub_id = broker.workspace_id(SPOKE), broker.workspace_id(HUB)

    run = _deploy(broker, "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324", SPOKE, allowCrossRegion=True)

    assert run["crossRegion"]["hubWorkspaceId"] == hub_id
    assert run["endpoint"]["id"].startswith(f"{hub_id}/serverlessEndpoints/")
    connection = run["crossRegion"]["connection"]
    assert connection["workspaceId"] == spoke_id
    arm = broker.emulator.arm()
    found = arm.request("GET", f"{spoke_id}/connections/{connection['name']}", api_version=CONNECTIONS_API)
    assert found.status_code == 200, found.text
    properties = found.json()["properties"]
    assert (properties["category"], properties["authType"]) == ("Serverless", "ApiKey")
    assert properties["target"] == run["endpoint"]["scoringUri"]
    assert "credentials" not in properties
    secrets = arm.request(
        "POST", f"{spoke_id}/connections/{connection['name']}/listsecrets", api_version=CONNECTIONS_API
    ).json()
    assert secrets["properties"]["credentials"]["key"] == _keys(broker, run["endpoint"]["id"])["primaryKey"]

    deleted = broker.wait_for_run(_delete(broker, run).json()["id"], timeout=15)

    assert deleted["status"] == "Deleted", deleted
    gone = arm.request("GET", f"{spoke_id}/connections/{connection['name']}", api_version=CONNECTIONS_API)
    assert gone.status_code == 404


def test_without_the_flag_the_region_rejection_suggests_the_hub(broker):
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={
            "workspaceId": broker.workspace_id(SPOKE),
            "modelId": "azureml://registries/azureml-cohere/models/Cohere-embed-v3-english",
        },
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/region-unsupported")
    assert "allowCrossRegion" in problem["detail"]
    assert HUB in problem["detail"]
    assert problem["crossRegionHub"] == {"workspaceId": broker.workspace_id(HUB), "location": "eastus2"}
