"""Contract tests: every Machine Learning response against the official examples (keys, types, status codes,
headers) and enum values against the documented sets.

The examples are copies in devstack/emulator/data/arm-examples (checked identical to ../shared when it is there).
Differences the emulator is allowed are listed per comparison: `optional` keys it may omit (e.g. the retired
2024-01-01-preview `offer`/`capacityReservation` shape, identity it never sets) and `extra` keys the example lacks
but the api-version's schema has (e.g. `modelSettings`, which azure-ai-ml sends for 2024-01-01-preview).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.testing import running_emulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "devstack" / "emulator" / "data" / "arm-examples"
SHARED_EXAMPLES = REPO / ".." / "shared" / "reference" / "arm-examples"
PREVIEW = "2024-01-01-preview"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"

ENUMS = {
    "provisioningState": {"Creating", "Deleting", "Succeeded", "Failed", "Updating", "Canceled"},
    "endpointState": {
        "Unknown",
        "Creating",
        "Deleting",
        "Suspending",
        "Reinstating",
        "Online",
        "Suspended",
        "CreationFailed",
        "DeletionFailed",
    },
    "authMode": {"Key", "AAD", "KeyAndAAD"},
    "contentSafetyStatus": {"Enabled", "Disabled"},
    "marketplaceSubscriptionStatus": {"Subscribed", "Suspended", "Unsubscribed", "PendingFulfillmentStart"},
    "createdByType": {"User", "Application", "ManagedIdentity", "Key"},
    "lastModifiedByType": {"User", "Application", "ManagedIdentity", "Key"},
}
# Objects whose keys are data (names), not schema: their values are compared with the example's first value.
MAPS = {"tags", "headers", "userAssignedIdentities", "outboundRules"}
SKU_DETAILS = {"sku.tier", "sku.size", "sku.family", "sku.capacity"}
RETIRED_PREVIEW_SHAPE = {"properties.offer", "properties.capacityReservation"}
# In the 2024-01-01-preview schema and sent by azure-ai-ml, missing from that version's stale examples (README note 4).
PREVIEW_SCHEMA_EXTRAS = {
    "properties.modelSettings",
    "properties.contentSafety",
    "properties.endpointState",
    "properties.marketplaceSubscriptionId",
}
WORKSPACE_EXTRAS = {
    "kind",
    "sku",
    "tags",
    "systemData",
    "properties.workspaceId",
    "properties.mlFlowTrackingUri",
    "properties.provisioningState",
}
WORKSPACE_OPTIONAL = {
    "identity.userAssignedIdentities",
    "properties.encryption",
    "properties.serviceProvisionedResourceGroup",
    "properties.privateLinkCount",
    "properties.imageBuildCompute",
    "properties.privateEndpointConnections",
    "properties.sharedPrivateLinkResources",
    "properties.managedNetwork",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def shape_differences(
    actual: Any, example: Any, *, optional: set[str] = frozenset(), extra: set[str] = frozenset(), path: str = ""
) -> list[str]:
    """Where `actual` departs from `example`: missing or unknown keys and type mismatches, recursively."""
    where = path or "<body>"
    if _kind(actual) != _kind(example):
        return [f"{where}: {_kind(actual)} where the example has {_kind(example)}"]
    if isinstance(example, list):
        return (
            [
                problem
                for item in actual
                for problem in shape_differences(item, example[0], optional=optional, extra=extra, path=f"{path}[]")
            ]
            if example
            else []
        )
    if not isinstance(example, dict):
        return []
    if path.rsplit(".", 1)[-1] in MAPS:
        values = list(example.values())
        return [
            f"{path}.{key}: {_kind(value)} where the example has {_kind(values[0])}"
            for key, value in actual.items()
            if values and _kind(value) != _kind(values[0])
        ]
    problems = []
    for key in example.keys() | actual.keys():
        child = f"{path}.{key}" if path else key
        # Tolerances name resource paths; a list's items are resources too.
        resource_path = child.removeprefix("value[].")
        if key not in actual:
            if resource_path not in optional:
                problems.append(f"{child}: missing")
        elif key not in example:
            if resource_path not in extra:
                problems.append(f"{child}: not in the example")
        else:
            problems += shape_differences(actual[key], example[key], optional=optional, extra=extra, path=child)
    return problems


def enum_violations(value: Any, path: str = "") -> list[str]:
    if isinstance(value, list):
        return [problem for item in value for problem in enum_violations(item, path)]
    if not isinstance(value, dict):
        return []
    problems = []
    for key, item in value.items():
        if key in ENUMS and item not in ENUMS[key]:
            problems.append(f"{path}.{key}: {item!r} is not one of {sorted(ENUMS[key])}")
        problems += enum_violations(item, f"{path}.{key}")
    return problems


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def assert_matches(response, example_file: str, *, optional=frozenset(), extra=frozenset()) -> None:
    responses = example(example_file)["responses"]
    status = str(response.status_code)
    assert status in responses, f"{example_file} documents {sorted(responses)}, the emulator answered {status}"
    documented = responses[status]
    for header in documented.get("headers") or {}:
        assert header.lower() in {name.lower() for name in response.headers}, f"{example_file}: header {header}"
    if "body" in documented:
        body = response.json()
        assert shape_differences(body, documented["body"], optional=set(optional), extra=set(extra)) == []
        assert enum_violations(body) == []


def endpoint_tolerances(version: str, *, partner: bool) -> dict:
    optional = {"identity", "kind"} | SKU_DETAILS
    if version == PREVIEW:
        return {"optional": optional | RETIRED_PREVIEW_SHAPE, "extra": PREVIEW_SCHEMA_EXTRAS}
    optional |= {"properties.contentSafety.contentSafetyLevel"}
    if not partner:
        optional |= {"properties.marketplaceSubscriptionId"}
    return {"optional": optional, "extra": set()}


def test_the_example_copies_match_the_shared_reference():
    if not SHARED_EXAMPLES.exists():
        pytest.skip("the shared reference folder is not beside the repository")
    for copy in EXAMPLES.rglob("*.json"):
        assert copy.read_bytes() == (SHARED_EXAMPLES / copy.relative_to(EXAMPLES)).read_bytes(), copy


@pytest.fixture
def deployed(emulator):
    """A subscribed partner endpoint and a sold-directly one, both created through raw PUTs and completed."""
    arm, workspace = emulator.arm(), emulator.workspace_path()
    responses = {
        "subscription_put": arm.request(
            "PUT", f"{workspace}/marketplaceSubscriptions/cohere-sub", body={"properties": {"modelId": COHERE}}
        ),
    }
    emulator.admin.complete_operations()
    for name, model in (("direct-ep", DEEPSEEK), ("partner-ep", COHERE)):
        body = {
            "properties": {"modelSettings": {"modelId": model}},
            "sku": {"name": "Consumption"},
            "location": "eastus2",
        }
        responses[f"{name}_put"] = arm.request("PUT", f"{workspace}/serverlessEndpoints/{name}", body=body)
    emulator.admin.complete_operations()
    return responses


@pytest.mark.parametrize("version", [PREVIEW, "2025-12-01"])
def test_endpoint_responses_match_the_examples(emulator, deployed, version):
    arm, endpoints = emulator.arm(), f"{emulator.workspace_path()}/serverlessEndpoints"
    folder = f"{PREVIEW}/ServerlessEndpoint" if version == PREVIEW else "ServerlessEndpoint"

    for name, partner in (("direct-ep", False), ("partner-ep", True)):
        tolerances = endpoint_tolerances(version, partner=partner)
        assert_matches(deployed[f"{name}_put"], f"{folder}/createOrUpdate.json", **tolerances)
        assert_matches(
            arm.request("GET", f"{endpoints}/{name}", api_version=version), f"{folder}/get.json", **tolerances
        )
        repeat = arm.request(
            "PUT",
            f"{endpoints}/{name}",
            api_version=version,
            body={"properties": {"modelSettings": {"modelId": COHERE if partner else DEEPSEEK}}, "location": "eastus2"},
        )
        assert repeat.status_code == 200
        assert_matches(repeat, f"{folder}/createOrUpdate.json", **tolerances)
    listing = arm.request("GET", endpoints, api_version=version)
    tolerances = endpoint_tolerances(version, partner=False)
    assert_matches(
        listing, f"{folder}/list.json", optional=tolerances["optional"] | {"nextLink"}, extra=tolerances["extra"]
    )
    keys = arm.request("POST", f"{endpoints}/direct-ep/listKeys", api_version=version)
    assert_matches(keys, f"{folder}/listKeys.json")
    regenerated = arm.request(
        "POST", f"{endpoints}/direct-ep/regenerateKeys", api_version=version, body={"keyType": "Secondary"}
    )
    assert_matches(regenerated, f"{folder}/regenerateKeys.json")
    assert_matches(arm.request("DELETE", f"{endpoints}/direct-ep", api_version=version), f"{folder}/delete.json")
    assert_matches(arm.request("DELETE", f"{endpoints}/never-was", api_version=version), f"{folder}/delete.json")


def test_paged_lists_carry_a_string_next_link():
    group = {"subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg-demo"}
    models = [DEEPSEEK, "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324"]
    with running_emulator(
        pageSize=1, workspaces=[{**group, "name": "demo-project", "location": "eastus2"}]
    ) as emulator:
        endpoints = f"{emulator.workspace_path()}/serverlessEndpoints"
        for index, model in enumerate(models):
            emulator.arm().request(
                "PUT",
                f"{endpoints}/ep-{index}",
                body={"properties": {"modelSettings": {"modelId": model}}, "location": "eastus2"},
            )
        listing = emulator.arm().request("GET", endpoints)

    assert isinstance(listing.json()["nextLink"], str)
    assert_matches(listing, "ServerlessEndpoint/list.json", **endpoint_tolerances("2025-12-01", partner=False))


@pytest.mark.parametrize("version", [PREVIEW, "2025-12-01"])
def test_subscription_responses_match_the_examples_exactly(emulator, deployed, version):
    arm, subscriptions = emulator.arm(), f"{emulator.workspace_path()}/marketplaceSubscriptions"
    folder = f"{PREVIEW}/MarketplaceSubscription" if version == PREVIEW else "MarketplaceSubscription"

    assert_matches(deployed["subscription_put"], f"{folder}/createOrUpdate.json")
    assert_matches(arm.request("GET", f"{subscriptions}/cohere-sub", api_version=version), f"{folder}/get.json")
    assert_matches(arm.request("GET", subscriptions, api_version=version), f"{folder}/list.json", optional={"nextLink"})
    repeat = arm.request(
        "PUT", f"{subscriptions}/cohere-sub", api_version=version, body={"properties": {"modelId": COHERE}}
    )
    assert_matches(repeat, f"{folder}/createOrUpdate.json")
    assert_matches(arm.request("DELETE", f"{subscriptions}/cohere-sub", api_version=version), f"{folder}/delete.json")
    assert_matches(arm.request("DELETE", f"{subscriptions}/never-was", api_version=version), f"{folder}/delete.json")


def test_workspace_get_matches_the_example_of_the_version_the_sdk_sends(emulator):
    response = emulator.arm().request("GET", emulator.workspace_path(), api_version="2024-10-01-preview")

    assert_matches(
        response, "2024-10-01-preview/Workspace/get.json", optional=WORKSPACE_OPTIONAL, extra=WORKSPACE_EXTRAS
    )


def test_operation_status_bodies_have_the_documented_shape(emulator, deployed):
    status_url = deployed["direct-ep_put"].headers["Azure-AsyncOperation"]
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    failing = emulator.arm().request(
        "PUT",
        f"{emulator.workspace_path()}/serverlessEndpoints/failing",
        body={
            "properties": {"modelSettings": {"modelId": "azureml://registries/azureml/models/Phi-4"}},
            "location": "eastus2",
        },
    )
    in_progress = emulator.arm().request("GET", failing.headers["Azure-AsyncOperation"], api_version=None).json()
    emulator.admin.fail_operations(code="InternalServerError", message="boom")
    failed = emulator.arm().request("GET", failing.headers["Azure-AsyncOperation"], api_version=None).json()
    succeeded = emulator.arm().request("GET", status_url, api_version=None).json()

    assert set(in_progress) == {"id", "name", "status", "startTime"}
    assert set(succeeded) == {"id", "name", "status", "startTime", "endTime"}
    assert set(failed) == {"id", "name", "status", "startTime", "endTime", "error"}
    assert (in_progress["status"], succeeded["status"], failed["status"]) == ("InProgress", "Succeeded", "Failed")
    assert failed["error"] == {"code": "InternalServerError", "message": "boom"}


def test_errors_use_the_arm_envelope(emulator):
    response = emulator.arm().request(
        "PUT",
        f"{emulator.workspace_path('demo-project-westeurope')}/serverlessEndpoints/ep",
        body={"properties": {"modelSettings": {"modelId": DEEPSEEK}}, "location": "westeurope"},
    )

    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["x-ms-request-id"]
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "target", "details", "additionalInfo"}
    assert {"code", "message"} <= set(error)
    assert all(set(detail) == {"code", "message"} for detail in error["details"])


def test_the_shape_check_itself_catches_departures():
    documented = {"id": "string", "properties": {"count": 1, "tags": {"k": "v"}}, "items": [{"on": True}]}
    departed = {"id": 1, "properties": {"tags": {"a": 2}}, "items": [{"on": "yes"}], "new": "x"}

    assert shape_differences(documented, documented) == []
    assert set(shape_differences(departed, documented)) == {
        "id: number where the example has str",
        "properties.count: missing",
        "properties.tags.a: number where the example has str",
        "items[].on: str where the example has boolean",
        "new: not in the example",
    }
    assert set(shape_differences(departed, documented, optional={"properties.count"}, extra={"new"})) == {
        "id: number where the example has str",
        "properties.tags.a: number where the example has str",
        "items[].on: str where the example has boolean",
    }
    assert enum_violations({"properties": {"provisioningState": "Done"}}) == [
        ".properties.provisioningState: 'Done' is not one of "
        "['Canceled', 'Creating', 'Deleting', 'Failed', 'Succeeded', 'Updating']"
    ]
