"""Serverless endpoints: LROs, server defaults, the service's validation rules, keys, paging and RBAC."""

import re
import threading

import pytest
import requests
from azure.ai.ml._restclient.arm_ml_service.models import RegenerateEndpointKeysRequest
from azure.ai.ml.entities import ServerlessEndpoint
from azure.ai.ml.exceptions import ValidationException
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from devstack.emulator.testing import ML_API_VERSION, running_emulator, wait_until

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
# The newest stable api-version, which has contentSafety (2024-01-01-preview, the SDK's, does not).
STABLE = "2026-07-01"
OPERATION_STATUS = re.compile(
    r"^https://127\.0\.0\.1:\d+/subscriptions/[^/]+/resourceGroups/rg-demo/providers/"
    r"Microsoft\.MachineLearningServices/locations/eastus2/mfeOperationsStatus/[^/?]+\?api-version=2024-01-01-preview$"
)


def endpoint_body(model_id: str = DEEPSEEK, location: str = "eastus2", **properties) -> dict:
    """The exact body azure-ai-ml sends, optionally with what a raw PUT may add."""
    return {
        "properties": {"modelSettings": {"modelId": model_id}, **properties},
        "tags": {},
        "sku": {"name": "Consumption"},
        "location": location,
    }


def put_endpoint(
    emulator,
    name: str,
    body: dict,
    workspace: str = "demo-project",
    principal: str | None = None,
    *,
    api_version: str = ML_API_VERSION,
):
    return emulator.arm(principal).request(
        "PUT", f"{emulator.workspace_path(workspace)}/serverlessEndpoints/{name}", body=body, api_version=api_version
    )


def get_endpoint(emulator, name: str, workspace: str = "demo-project", api_version: str = ML_API_VERSION) -> dict:
    path = f"{emulator.workspace_path(workspace)}/serverlessEndpoints/{name}"
    return emulator.arm().request("GET", path, api_version=api_version).json()


def test_create_is_a_long_running_operation_the_sdk_can_poll(emulator):
    response = put_endpoint(emulator, "ep-lro", endpoint_body())

    assert response.status_code == 201
    assert OPERATION_STATUS.match(response.headers["Azure-AsyncOperation"])
    assert response.headers["retry-after-ms"] == "50"
    assert response.headers["x-ms-async-operation-timeout"] == "PT1H"
    assert response.json()["properties"]["provisioningState"] == "Creating"
    assert response.json()["properties"]["endpointState"] == "Creating"
    status_url = response.headers["Azure-AsyncOperation"]
    first = emulator.arm().request("GET", status_url, api_version=None)
    assert first.json()["status"] == "InProgress"
    assert "endTime" not in first.json()

    done = wait_until(
        lambda: (
            (body := emulator.arm().request("GET", status_url, api_version=None).json())["status"] != "InProgress"
            and body
        )
    )
    assert done["status"] == "Succeeded"
    assert done["endTime"] >= done["startTime"]
    assert get_endpoint(emulator, "ep-lro")["properties"]["provisioningState"] == "Succeeded"
    assert get_endpoint(emulator, "ep-lro")["properties"]["endpointState"] == "Online"


def test_server_defaults_fill_what_the_sdk_never_sends(emulator, ml_client):
    ml_client().serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="DeepSeek-R1-qwerty", model_id=DEEPSEEK)
    ).result()

    body = get_endpoint(emulator, "deepseek-r1-QWERTY", api_version=STABLE)

    assert "contentSafety" not in get_endpoint(emulator, "deepseek-r1-qwerty")["properties"]
    assert body["name"] == "DeepSeek-R1-qwerty"
    assert body["type"] == "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints"
    assert body["sku"] == {"name": "Consumption"}
    assert body["location"] == "eastus2"
    properties = body["properties"]
    assert properties["authMode"] == "Key"
    assert properties["contentSafety"] == {"contentSafetyStatus": "Enabled"}
    assert re.fullmatch(
        r"https://deepseek-r1-qwerty-[a-z0-9]{4}\.eastus2\.models\.ai\.azure\.com",
        properties["inferenceEndpoint"]["uri"],
    )
    assert "marketplaceSubscriptionId" not in properties
    broker = emulator.state.scenario.principal(emulator.env["DEMO_BROKER_OBJECT_ID"])
    assert body["systemData"]["createdBy"] == broker["clientId"]
    assert body["systemData"]["createdByType"] == "Application"


def test_a_raw_put_may_choose_auth_mode_and_content_safety(emulator):
    body = endpoint_body(authMode="AAD", contentSafety={"contentSafetyStatus": "Disabled"})
    created = put_endpoint(emulator, "ep-aad", body, api_version=STABLE).json()["properties"]
    assert (created["authMode"], created["contentSafety"]["contentSafetyStatus"]) == ("AAD", "Disabled")

    rejected = put_endpoint(emulator, "ep-bad", endpoint_body(authMode="Password"), api_version=STABLE)
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "InvalidRequestContent"


def test_loose_mode_still_applies_the_services_own_rules():
    with running_emulator(timings={"lroSeconds": 0.1, "retryAfterMs": 50}, loose=True) as emulator:
        rejected = put_endpoint(emulator, "ep-bad", endpoint_body(authMode="Password"), api_version=STABLE)

    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "UserError"


def test_a_versioned_model_id_is_rejected(emulator, ml_client):
    response = put_endpoint(emulator, "ep-versioned", endpoint_body(f"{DEEPSEEK}/versions/1"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "UserError"
    assert "/versions/1" in response.json()["error"]["message"]
    with pytest.raises(ValidationException):
        ml_client().serverless_endpoints.begin_create_or_update(
            ServerlessEndpoint(name="ep-versioned", location="eastus2", model_id=f"{DEEPSEEK}/versions/1")
        )
    assert emulator.admin.state()["endpoints"] == []


@pytest.mark.parametrize(
    ("workspace", "model_id", "region"),
    [
        ("demo-project-westeurope", DEEPSEEK, "West Europe"),
        ("demo-project-westeurope", COHERE, "West Europe"),
        ("demo-project", "azureml://registries/azureml/models/Phi-3.5-vision-instruct", "East US 2"),
    ],
)
def test_a_model_not_offered_in_the_projects_region_is_refused(emulator, ml_client, workspace, model_id, region):
    with pytest.raises(HttpResponseError) as raised:
        ml_client(workspace).serverless_endpoints.begin_create_or_update(
            ServerlessEndpoint(name="ep-region", model_id=model_id)
        )

    assert raised.value.status_code == 400
    assert raised.value.error.code == "UserError"
    assert raised.value.error.message == f"The requested model {model_id} is not available in region {region}."
    assert raised.value.error.details[0].code == "ServerlessModelNotAvailableInRegion"


def test_a_partner_model_needs_a_subscribed_marketplace_subscription(emulator, ml_client):
    client = ml_client()
    offer_missing = "Serverless offer 'cohere-command-r-08-2024-offer' not found in service namespace 'demo-project'."
    with pytest.raises(HttpResponseError) as raised:
        client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep-cohere", model_id=COHERE))
    assert raised.value.error.message == offer_missing
    assert raised.value.error.details[0].code == "ServerlessOfferNotFound"

    subscribe = emulator.arm().request(
        "PUT",
        f"{emulator.workspace_path()}/marketplaceSubscriptions/cohere-sub",
        body={"properties": {"modelId": COHERE}},
    )
    assert subscribe.status_code == 201
    emulator.admin.complete_operations()
    emulator.admin.subscription_action("suspend", "demo-project", "cohere-sub")
    with pytest.raises(HttpResponseError) as raised_again:
        client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep-cohere", model_id=COHERE))
    assert raised_again.value.error.message == offer_missing

    subscription = emulator.admin.subscription_action("reinstate", "demo-project", "cohere-sub")
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep-cohere", model_id=COHERE)).result()
    assert get_endpoint(emulator, "ep-cohere")["properties"]["marketplaceSubscriptionId"] == subscription["id"]


def test_one_endpoint_per_model_per_project(emulator, ml_client):
    client = ml_client()
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="first", model_id=DEEPSEEK)).result()

    with pytest.raises(ResourceExistsError) as raised:
        client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="second", model_id=DEEPSEEK))

    assert "one deployment per model per project" in raised.value.error.message
    assert raised.value.error.details[0].code == "ServerlessEndpointModelAlreadyDeployed"


def region_scenario() -> dict:
    """Three projects (two in eastus2, one in westeurope) and models offered in both regions."""
    group = {"subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg-demo"}
    return {
        "workspaces": [
            {**group, "name": "east-a", "location": "eastus2"},
            {**group, "name": "east-b", "location": "eastus2"},
            {**group, "name": "west", "location": "westeurope"},
        ],
        "models": [
            {
                "modelId": f"azureml://registries/azureml-test/models/model-{index}",
                "soldDirectly": True,
                "locations": ["eastus2", "westeurope"],
            }
            for index in range(5)
        ],
        "timings": {"lroSeconds": 0.1, "retryAfterMs": 50},
        "pageSize": 2,
    }


def test_endpoint_names_are_unique_per_region_ignoring_case():
    model = "azureml://registries/azureml-test/models/model-{}"
    with running_emulator(**region_scenario()) as emulator:
        assert put_endpoint(emulator, "shared-name", endpoint_body(model.format(0)), "east-a").status_code == 201

        taken = put_endpoint(emulator, "SHARED-NAME", endpoint_body(model.format(1)), "east-b")
        other_region = put_endpoint(emulator, "shared-name", endpoint_body(model.format(1), "westeurope"), "west")
        same_model_elsewhere = put_endpoint(emulator, "another", endpoint_body(model.format(0)), "east-b")

    assert taken.status_code == 409
    assert taken.json()["error"]["message"] == (
        "Serverless endpoint name 'SHARED-NAME' is not available. Please select a different name."
    )
    assert other_region.status_code == 201
    assert same_model_elsewhere.status_code == 201


@pytest.mark.parametrize("name", ["1starts-with-digit", "has_underscore", "a" * 53, "dot.ted"])
def test_endpoint_names_follow_the_documented_pattern(emulator, name):
    response = put_endpoint(emulator, name, endpoint_body())

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "InvalidServerlessEndpointName"


def test_a_repeated_put_updates_in_place_but_cannot_change_the_model(emulator, ml_client):
    ml_client().serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK)).result()
    keys_before = emulator.arm().request("POST", f"{emulator.workspace_path()}/serverlessEndpoints/ep/listKeys").json()

    again = put_endpoint(emulator, "EP", {**endpoint_body(), "tags": {"team": "search"}})
    other_model = put_endpoint(
        emulator, "ep", endpoint_body("azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324")
    )

    assert again.status_code == 200
    assert again.json()["tags"] == {"team": "search"}
    assert again.json()["name"] == "ep"
    assert other_model.status_code == 400
    keys_after = emulator.arm().request("POST", f"{emulator.workspace_path()}/serverlessEndpoints/ep/listKeys").json()
    assert keys_after == keys_before


def test_delete_answers_202_with_operation_headers_and_204_once_gone(emulator, ml_client):
    ml_client().serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK)).result()
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    path = f"{emulator.workspace_path()}/serverlessEndpoints/ep"

    deleting = emulator.arm().request("DELETE", path)
    assert deleting.status_code == 202
    assert "/mfeOperationResults/" in deleting.headers["Location"]
    assert "/mfeOperationsStatus/" in deleting.headers["Azure-AsyncOperation"]
    assert get_endpoint(emulator, "ep")["properties"]["provisioningState"] == "Deleting"
    assert emulator.arm().request("GET", deleting.headers["Location"], api_version=None).status_code == 202

    emulator.admin.complete_operations()

    assert emulator.arm().request("GET", deleting.headers["Location"], api_version=None).status_code == 204
    assert emulator.arm().request("DELETE", path).status_code == 204
    with pytest.raises(ResourceNotFoundError):
        ml_client().serverless_endpoints.get("ep")


def test_the_sdk_delete_poller_completes(emulator, ml_client):
    client = ml_client()
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK)).result()

    client.serverless_endpoints.begin_delete("ep").wait()

    assert list(client.serverless_endpoints.list()) == []


def test_a_delete_during_create_cancels_the_create(emulator):
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    put_endpoint(emulator, "ep", endpoint_body())

    emulator.arm().request("DELETE", f"{emulator.workspace_path()}/serverlessEndpoints/ep")

    statuses = {(item["action"], item["status"]) for item in emulator.admin.operations()}
    assert statuses == {("create", "Canceled"), ("delete", "InProgress")}


def test_keys_are_listed_and_regenerated_one_at_a_time(emulator, ml_client):
    client = ml_client()
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK)).result()
    before = client.serverless_endpoints.get_keys("ep")
    assert re.fullmatch(r"[A-Za-z0-9+/]{32}", before.primary_key)
    assert before.primary_key != before.secondary_key

    # The SDK's own begin_regenerate_keys never sends regenerateKeys (facts §1); its service client does.
    regenerated = client.serverless_endpoints._service_client.begin_regenerate_keys(
        "rg-demo", "demo-project", "ep", RegenerateEndpointKeysRequest(key_type="Secondary")
    ).result()
    chosen = emulator.arm().request(
        "POST",
        f"{emulator.workspace_path()}/serverlessEndpoints/ep/regenerateKeys",
        body={"keyType": "Primary", "keyValue": "my-own-primary-key"},
    )
    invalid = emulator.arm().request(
        "POST", f"{emulator.workspace_path()}/serverlessEndpoints/ep/regenerateKeys", body={"keyType": "Tertiary"}
    )

    assert regenerated.primary_key == before.primary_key
    assert regenerated.secondary_key not in {before.secondary_key, before.primary_key}
    assert chosen.json() == {"primaryKey": "my-own-primary-key", "secondaryKey": regenerated.secondary_key}
    assert client.serverless_endpoints.get_keys("ep").primary_key == "my-own-primary-key"
    assert invalid.status_code == 400


def test_lists_page_by_absolute_next_links():
    with running_emulator(**region_scenario()) as emulator:
        for index in range(5):
            body = endpoint_body(f"azureml://registries/azureml-test/models/model-{index}")
            put_endpoint(emulator, f"ep-{index}", body, "east-a")
        path = f"{emulator.workspace_path('east-a')}/serverlessEndpoints"
        names = []
        response = emulator.arm().request("GET", path).json()
        first_link = response["nextLink"]
        while True:
            names += [item["name"] for item in response["value"]]
            if "nextLink" not in response:
                break
            response = emulator.arm().request("GET", response["nextLink"], api_version=None).json()
        bad_token = emulator.arm().request("GET", path, **{"$skipToken": "not-a-token"})

    assert first_link.startswith(f"{emulator.arm_url}{path}?")
    assert "%24skipToken=" in first_link or "$skipToken=" in first_link
    assert names == [f"ep-{index}" for index in range(5)]
    assert bad_token.status_code == 400


def test_the_sdk_follows_next_links(emulator, ml_client):
    emulator.admin.reset(pageSize=1)
    client = ml_client()
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="a", model_id=DEEPSEEK)).result()
    second_model = "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324"
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="b", model_id=second_model)).result()

    assert sorted(endpoint.name for endpoint in client.serverless_endpoints.list()) == ["a", "b"]


def test_api_versions_are_checked(emulator):
    arm, path = emulator.arm(), f"{emulator.workspace_path()}/serverlessEndpoints"

    missing = arm.request("GET", path, api_version=None)
    unknown = arm.request("GET", path, api_version="2019-01-01")
    workspace_versions = {
        version: arm.request("GET", emulator.workspace_path(), api_version=version).status_code
        for version in ("2024-10-01-preview", "2025-12-01", "2026-07-01", "2021-01-01", "2025-04-01")
    }

    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "API version '2019-01-01' for type 'workspaces/serverlessEndpoints'" in unknown.json()["error"]["message"]
    assert workspace_versions == {
        "2024-10-01-preview": 200,
        "2025-12-01": 200,
        "2026-07-01": 200,
        "2021-01-01": 400,
        # Published, but the emulator serves only the api-versions it has a schema for.
        "2025-04-01": 400,
    }


def test_missing_things_answer_404_like_arm(emulator, ml_client):
    arm = emulator.arm()
    subscription = emulator.env["AZURE_SUBSCRIPTION_ID"]
    with pytest.raises(ResourceNotFoundError):
        ml_client().serverless_endpoints.get("nope")
    workspace = arm.request("GET", emulator.workspace_path().replace("demo-project", "nope") + "/serverlessEndpoints")
    group = arm.request(
        "GET",
        f"/subscriptions/{subscription}/resourceGroups/rg-nope/providers/"
        "Microsoft.MachineLearningServices/workspaces/demo-project/serverlessEndpoints",
    )
    unknown_subscription = arm.request(
        "GET", emulator.workspace_path().replace(subscription, "11111111-1111-1111-1111-111111111111")
    )

    assert (workspace.status_code, workspace.json()["error"]["code"]) == (404, "ResourceNotFound")
    assert (group.status_code, group.json()["error"]["code"]) == (404, "ResourceGroupNotFound")
    assert (unknown_subscription.status_code, unknown_subscription.json()["error"]["code"]) == (
        404,
        "SubscriptionNotFound",
    )


def test_a_failed_operation_reaches_the_sdk_as_its_error(emulator, ml_client):
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    poller = ml_client().serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK))
    emulator.admin.fail_operations(code="QuotaExceeded", message="Not enough quota in eastus2.")

    with pytest.raises(HttpResponseError) as raised:
        poller.result()

    assert raised.value.error.code == "QuotaExceeded"
    assert raised.value.error.message == "Not enough quota in eastus2."
    assert get_endpoint(emulator, "ep")["properties"]["endpointState"] == "CreationFailed"


def test_a_put_on_a_failed_endpoint_provisions_it_again(emulator, ml_client):
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    put_endpoint(emulator, "ep", endpoint_body())
    emulator.admin.fail_operations()
    emulator.admin.call("PUT", "/timings", {"lroSeconds": 0.05})

    retried = ml_client().serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="ep", model_id=DEEPSEEK))

    assert retried.result().provisioning_state == "succeeded"
    assert get_endpoint(emulator, "ep")["properties"]["endpointState"] == "Online"


def test_every_ml_route_is_authorized_through_rbac(emulator):
    env = emulator.env
    reader, requester = env["DEMO_READER_OBJECT_ID"], env["DEMO_REQUESTER_OBJECT_ID"]
    created = put_endpoint(emulator, "ep", endpoint_body(), principal=requester)
    status_url = created.headers["Azure-AsyncOperation"]
    path = f"{emulator.workspace_path()}/serverlessEndpoints/ep"

    denied_write = put_endpoint(emulator, "ep2", endpoint_body(), principal=reader)
    denied_keys = emulator.arm(reader).request("POST", f"{path}/listKeys")
    denied_elsewhere = put_endpoint(
        emulator, "ep3", endpoint_body(location="westeurope"), "demo-project-westeurope", principal=requester
    )
    reader_can_read = emulator.arm(reader).request("GET", path)
    reader_can_poll = emulator.arm(reader).request("GET", status_url, api_version=None)

    assert created.status_code == 201
    assert denied_write.status_code == 403
    assert denied_write.json()["error"]["message"].startswith(
        f"The client '{reader}' with object id '{reader}' does not have authorization to perform action "
        f"'Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write' over scope '{path}2'"
    )
    assert denied_keys.status_code == 403
    assert "serverlessEndpoints/listKeys/action" in denied_keys.json()["error"]["message"]
    assert denied_elsewhere.status_code == 403
    assert reader_can_read.status_code == 200
    assert reader_can_poll.status_code == 200


def test_requests_without_a_token_are_refused(emulator):
    response = requests.get(
        f"{emulator.arm_url}{emulator.workspace_path()}/serverlessEndpoints",
        params={"api-version": "2024-01-01-preview"},
        verify=emulator.ca_bundle,
        timeout=10,
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"


def test_concurrent_creates_of_one_model_admit_exactly_one(emulator):
    results: list[int] = []

    def create(index: int) -> None:
        results.append(put_endpoint(emulator, f"racer-{index}", endpoint_body()).status_code)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [201] + [409] * 11
    assert len(emulator.admin.state()["endpoints"]) == 1
