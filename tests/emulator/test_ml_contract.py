"""Contract tests: every Machine Learning answer against the schema of its api-version (derived from the official
OpenAPI, devstack/emulator/schemas/), and against the official examples (keys, types, status codes, headers).

Schema checks run on every answer the `emulator` fixture gives (tests/emulator/schema_checks.py, registered in
conftest); the tests here drive each route at each api-version it serves, through each state, and assert the checks
saw them. The example comparisons allow listed differences: `optional` keys the emulator may omit (e.g. the retired
2024-01-01-preview `offer`/`capacityReservation` shape, identity it never sets) and `extra` keys the example lacks but
the api-version's schema has (e.g. `modelSettings`, which azure-ai-ml sends for 2024-01-01-preview). The examples are
copies in devstack/emulator/data/arm-examples (checked identical to ../shared when it is there).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator.api_schemas import SCHEMA_DIR, answer_role, catalog
from devstack.emulator.testing import running_emulator

from .schema_checks import record_contract

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "devstack" / "emulator" / "data" / "arm-examples"
SHARED_EXAMPLES = REPO / ".." / "shared" / "reference" / "arm-examples"
PREVIEW = "2024-01-01-preview"
STABLE = "2026-07-01"
ENDPOINT_VERSIONS = (PREVIEW, "2025-12-01", STABLE)
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


def endpoint_put(model: str, version: str, **extra) -> dict:
    """A PUT valid at `version`: what azure-ai-ml sends for 2024-01-01-preview, plus authMode (required) and
    contentSafety from 2025-12-01 on."""
    properties: dict[str, Any] = {"modelSettings": {"modelId": model}}
    if version != PREVIEW:
        properties |= {"authMode": "Key", "contentSafety": {"contentSafetyStatus": "Enabled"}}
    return {"properties": properties, "sku": {"name": "Consumption"}, "location": "eastus2", **extra}


@pytest.fixture
def contract(emulator):
    """The schema checks the `emulator` fixture registered (it asserts no violations when the test ends)."""
    return emulator.state.response_checks[0]


@pytest.fixture(params=[PREVIEW, "2025-12-01"])
def deployed(request, emulator):
    """A subscribed partner endpoint and a sold-directly one, created through raw PUTs at the parameter's
    api-version and completed."""
    version = request.param
    arm, workspace = emulator.arm(), emulator.workspace_path()
    responses = {
        "version": version,
        "subscription_put": arm.request(
            "PUT",
            f"{workspace}/marketplaceSubscriptions/cohere-sub",
            api_version=version,
            body={"properties": {"modelId": COHERE}},
        ),
    }
    emulator.admin.complete_operations()
    for name, model in (("direct-ep", DEEPSEEK), ("partner-ep", COHERE)):
        responses[f"{name}_put"] = arm.request(
            "PUT", f"{workspace}/serverlessEndpoints/{name}", api_version=version, body=endpoint_put(model, version)
        )
    emulator.admin.complete_operations()
    return responses


def test_endpoint_responses_match_the_examples(emulator, deployed):
    version = deployed["version"]
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
            body=endpoint_put(COHERE if partner else DEEPSEEK, version),
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
        contract = record_contract(emulator)
        endpoints = f"{emulator.workspace_path()}/serverlessEndpoints"
        for index, model in enumerate(models):
            emulator.arm().request(
                "PUT", f"{endpoints}/ep-{index}", api_version=STABLE, body=endpoint_put(model, STABLE)
            )
        listing = emulator.arm().request("GET", endpoints, api_version="2025-12-01")
        second = emulator.arm().request("GET", listing.json()["nextLink"], api_version=None)

    assert isinstance(listing.json()["nextLink"], str)
    assert [item["name"] for item in listing.json()["value"] + second.json()["value"]] == ["ep-0", "ep-1"]
    assert_matches(listing, "ServerlessEndpoint/list.json", **endpoint_tolerances("2025-12-01", partner=False))
    assert contract.violations == []
    assert contract.checked[("2025-12-01", "serverlessEndpointList")] == 2


# -- the schemas ----------------------------------------------------------------------------------------------------


def _prose(value: Any) -> list[str]:
    """Spec prose left in a schema: `description`/`summary` keywords with text (a property may be called that)."""
    if isinstance(value, dict):
        found = [text for key, text in value.items() if key in {"description", "summary"} and isinstance(text, str)]
        return found + [text for item in value.values() for text in _prose(item)]
    if isinstance(value, list):
        return [text for item in value for text in _prose(item)]
    return []


def test_each_schema_file_names_its_official_source_and_copies_no_prose():
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        source = document["source"]
        assert source["repository"] == "Azure/azure-rest-api-specs", path.name
        assert len(source["commit"]) == 40, path.name
        assert all(item.startswith("specification/") for item in source.get("paths", [source.get("path")])), path
        assert document["$comment"].startswith("Derived from the official OpenAPI"), path.name
        assert _prose(document) == [], path.name
        if "apiVersion" in document:
            assert path.stem == document["apiVersion"]
            assert f"/{document['apiVersion']}/" in source["path"]


def test_the_served_api_versions_are_those_with_a_schema():
    schemas = catalog()

    assert schemas.versions("serverlessEndpoint") == (PREVIEW, "2025-12-01", STABLE)
    assert schemas.versions("marketplaceSubscription") == (PREVIEW, "2025-12-01", STABLE)
    assert schemas.versions("workspace") == ("2024-10-01-preview", "2025-12-01", STABLE)
    assert schemas.versions("connection") == ("2024-10-01", STABLE)
    assert schemas.source(STABLE)["path"].endswith(
        "Microsoft.MachineLearningServices/MachineLearningServices/stable/2026-07-01/openapi.json"
    )


def test_the_version_schemas_differ_where_the_specs_do():
    schemas = catalog()
    with_safety = endpoint_put(DEEPSEEK, STABLE)
    without_auth_mode = endpoint_put(DEEPSEEK, PREVIEW)

    assert [error.path for error in schemas.request_errors(PREVIEW, "serverlessEndpoint", with_safety)] == [
        "properties.contentSafety"
    ]
    assert schemas.request_errors(STABLE, "serverlessEndpoint", with_safety) == []
    assert schemas.request_errors(PREVIEW, "serverlessEndpoint", without_auth_mode) == []
    assert [error.path for error in schemas.request_errors(STABLE, "serverlessEndpoint", without_auth_mode)] == [
        "properties.authMode"
    ]
    pending = {"properties": {"modelId": COHERE, "marketplaceSubscriptionStatus": "PendingFulfillmentStart"}}
    assert schemas.response_errors(PREVIEW, "marketplaceSubscription", pending) == []
    assert schemas.response_errors(STABLE, "marketplaceSubscription", pending) != []
    assert schemas.shape(STABLE, "marketplaceSubscription", pending) == {"properties": {"modelId": COHERE}}


@pytest.mark.parametrize("version", ENDPOINT_VERSIONS)
def test_every_endpoint_and_subscription_answer_is_valid_at_its_api_version(emulator, contract, version):
    arm, workspace = emulator.arm(), emulator.workspace_path()
    endpoints, subscriptions = f"{workspace}/serverlessEndpoints", f"{workspace}/marketplaceSubscriptions"
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None, "regenerateKeysAsync": True})

    subscribing = arm.request(
        "PUT", f"{subscriptions}/cohere-sub", api_version=version, body={"properties": {"modelId": COHERE}}
    )
    pending = arm.request("GET", f"{subscriptions}/cohere-sub", api_version=version).json()["properties"]
    arm.request("GET", subscribing.headers["Azure-AsyncOperation"], api_version=None)
    emulator.admin.complete_operations()
    creating = arm.request("PUT", f"{endpoints}/partner-ep", api_version=version, body=endpoint_put(COHERE, version))
    arm.request("GET", creating.headers["Azure-AsyncOperation"], api_version=None)
    emulator.admin.fail_operations(code="InternalServerError", message="boom")
    arm.request("GET", f"{endpoints}/partner-ep", api_version=version)
    arm.request("PUT", f"{endpoints}/partner-ep", api_version=version, body=endpoint_put(COHERE, version))
    emulator.admin.complete_operations()
    arm.request("GET", f"{endpoints}/partner-ep", api_version=version)
    arm.request("GET", endpoints, api_version=version)
    arm.request("GET", subscriptions, api_version=version)
    arm.request("POST", f"{endpoints}/partner-ep/listKeys", api_version=version)
    regenerating = arm.request(
        "POST", f"{endpoints}/partner-ep/regenerateKeys", api_version=version, body={"keyType": "Primary"}
    )
    arm.request("GET", regenerating.headers["Azure-AsyncOperation"], api_version=None)
    emulator.admin.subscription_action("suspend", "demo-project", "cohere-sub")
    arm.request("GET", f"{endpoints}/partner-ep", api_version=version)
    arm.request("GET", f"{subscriptions}/cohere-sub", api_version=version)
    arm.request("DELETE", f"{endpoints}/partner-ep", api_version=version)
    arm.request("GET", f"{endpoints}/partner-ep", api_version=version)
    arm.request("DELETE", f"{subscriptions}/cohere-sub", api_version=version)
    arm.request("GET", f"{endpoints}/absent", api_version=version)

    assert contract.violations == []
    assert {role for (checked_version, role) in contract.checked if checked_version == version} == {
        "serverlessEndpoint",
        "serverlessEndpointList",
        "endpointKeys",
        "marketplaceSubscription",
        "marketplaceSubscriptionList",
        "operationStatus",
        "error",
    }
    # 2025-12-01 and later have no PendingFulfillmentStart: a subscription being bought shows no status there.
    assert pending.get("marketplaceSubscriptionStatus") == ("PendingFulfillmentStart" if version == PREVIEW else None)


@pytest.mark.parametrize("version", ["2024-10-01-preview", "2025-12-01", STABLE])
def test_the_workspace_is_valid_at_each_api_version(emulator, contract, version):
    response = emulator.arm().request("GET", emulator.workspace_path(), api_version=version)

    assert response.status_code == 200
    assert contract.checked[(version, "workspace")] == 1


@pytest.mark.parametrize("version", ["2024-10-01", STABLE])
def test_every_connection_answer_is_valid_at_its_api_version(emulator, contract, version):
    arm, connections = emulator.arm(), f"{emulator.workspace_path()}/connections"
    body = {
        "properties": {
            "category": "Serverless",
            "target": "https://deepseek-r1-abcd.eastus2.models.ai.azure.com",
            "authType": "ApiKey",
            "credentials": {"key": "not-a-real-key"},
            "metadata": {"keyType": "primary"},
        }
    }

    assert arm.request("PUT", f"{connections}/deepseek", api_version=version, body=body).status_code == 200
    arm.request("GET", f"{connections}/deepseek", api_version=version)
    arm.request("GET", connections, api_version=version)
    assert arm.request("POST", f"{connections}/deepseek/listsecrets", api_version=version).json()["properties"][
        "credentials"
    ] == {"key": "not-a-real-key"}
    arm.request("DELETE", f"{connections}/deepseek", api_version=version)
    arm.request("GET", f"{connections}/deepseek", api_version=version)

    assert contract.violations == []
    assert {role for (checked_version, role) in contract.checked if checked_version == version} == {
        "connection",
        "connectionList",
        "error",
    }


def test_the_checks_catch_an_answer_its_version_does_not_allow(emulator):
    # An answer shaped for 2026-07-01, claimed for 2024-01-01-preview: contentSafety is not in that schema.
    body = {
        "id": "x",
        "location": "eastus2",
        "properties": {"authMode": "Key", "contentSafety": {"contentSafetyStatus": "Enabled"}},
    }

    assert catalog().response_errors(PREVIEW, "serverlessEndpoint", body) == [
        "properties: Additional properties are not allowed ('contentSafety' was unexpected)"
    ]
    assert catalog().response_errors(STABLE, "serverlessEndpoint", body) == []
    assert answer_role("GET", f"{emulator.workspace_path()}/serverlessEndpoints/ep", 200) == "serverlessEndpoint"
    assert answer_role("GET", f"{emulator.workspace_path()}/serverlessEndpoints/ep", 404) == "error"
    assert answer_role("DELETE", f"{emulator.workspace_path()}/serverlessEndpoints/ep", 202) is None


def test_subscription_responses_match_the_examples_exactly(emulator, deployed):
    version = deployed["version"]
    arm, subscriptions = emulator.arm(), f"{emulator.workspace_path()}/marketplaceSubscriptions"
    folder = f"{PREVIEW}/MarketplaceSubscription" if version == PREVIEW else "MarketplaceSubscription"

    # Being bought, a subscription has no status from 2025-12-01 on (PendingFulfillmentStart is preview-only).
    pending = set() if version == PREVIEW else {"properties.marketplaceSubscriptionStatus"}
    assert_matches(deployed["subscription_put"], f"{folder}/createOrUpdate.json", optional=pending)
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
