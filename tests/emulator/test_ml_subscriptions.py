"""Marketplace subscriptions: the purchase LRO, the offer rules, and what losing a subscription does to endpoints."""

import pytest
from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from devstack.emulator.testing import wait_until

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


def subscriptions_path(emulator, name: str = "") -> str:
    return f"{emulator.workspace_path()}/marketplaceSubscriptions{'/' + name if name else ''}"


def endpoint(emulator, name: str) -> dict:
    return emulator.arm().request("GET", f"{emulator.workspace_path()}/serverlessEndpoints/{name}").json()


def subscribe_and_deploy(ml_client, subscription: str = "cohere-sub", endpoint_name: str = "cohere-ep") -> None:
    client = ml_client()
    client.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name=subscription, model_id=COHERE)
    ).result()
    client.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name=endpoint_name, model_id=COHERE)).result()


def test_subscribing_is_a_long_running_purchase(emulator):
    created = emulator.arm().request(
        "PUT", subscriptions_path(emulator, "cohere-sub"), body={"properties": {"modelId": COHERE}}
    )

    assert created.status_code == 201
    assert "/mfeOperationsStatus/" in created.headers["Azure-AsyncOperation"]
    properties = created.json()["properties"]
    assert (properties["marketplaceSubscriptionStatus"], properties["provisioningState"]) == (
        "PendingFulfillmentStart",
        "Creating",
    )
    assert properties["marketplacePlan"] == {
        "publisherId": "cohere",
        "offerId": "cohere-command-r-08-2024-offer",
        "planId": "cohere-command-r-08-2024-plan",
    }
    assert created.json()["systemData"]["createdByType"] == "Application"
    settled = wait_until(
        lambda: (
            (body := emulator.arm().request("GET", subscriptions_path(emulator, "cohere-sub")).json())["properties"][
                "provisioningState"
            ]
            == "Succeeded"
            and body
        )
    )
    assert settled["properties"]["marketplaceSubscriptionStatus"] == "Subscribed"
    assert not {"location", "tags", "sku"} & settled.keys()


def test_a_model_sold_directly_has_no_offer_to_subscribe_to(ml_client):
    with pytest.raises(HttpResponseError) as raised:
        ml_client().marketplace_subscriptions.begin_create_or_update(
            MarketplaceSubscription(name="deepseek", model_id=DEEPSEEK)
        )

    assert raised.value.status_code == 400
    assert raised.value.error.message.startswith(
        "Error occurred when subscribing to Marketplace: Marketplace Subscription purchase eligibility check failed."
    )


def test_a_project_subscribes_once_per_offer_and_a_repeat_is_idempotent(emulator, ml_client):
    client = ml_client()
    first = client.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name="cohere-sub", model_id=COHERE)
    ).result()

    repeat = emulator.arm().request(
        "PUT", subscriptions_path(emulator, "COHERE-SUB"), body={"properties": {"modelId": COHERE}}
    )
    with pytest.raises(ResourceExistsError):
        client.marketplace_subscriptions.begin_create_or_update(MarketplaceSubscription(name="other", model_id=COHERE))

    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.id
    assert [item.name for item in client.marketplace_subscriptions.list()] == ["cohere-sub"]
    assert client.marketplace_subscriptions.get("cohere-sub").status == "subscribed"


def test_deleting_the_subscription_leaves_its_endpoint_unhealthy_until_resubscribed(emulator, ml_client):
    subscribe_and_deploy(ml_client)
    client = ml_client()
    subscription_id = endpoint(emulator, "cohere-ep")["properties"]["marketplaceSubscriptionId"]
    assert endpoint(emulator, "cohere-ep")["properties"]["endpointState"] == "Online"

    client.marketplace_subscriptions.begin_delete("cohere-sub").wait()

    unhealthy = endpoint(emulator, "cohere-ep")["properties"]
    assert [item.name for item in client.serverless_endpoints.list()] == ["cohere-ep"]
    assert (unhealthy["provisioningState"], unhealthy["endpointState"]) == ("Succeeded", "Suspended")
    assert unhealthy["marketplaceSubscriptionId"] == subscription_id
    assert emulator.arm().request("GET", subscription_id).status_code == 404

    client.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name="cohere-again", model_id=COHERE)
    ).result()

    healed = endpoint(emulator, "cohere-ep")["properties"]
    assert healed["endpointState"] == "Online"
    assert healed["marketplaceSubscriptionId"] == subscription_id.replace("cohere-sub", "cohere-again")


@pytest.mark.parametrize(("action", "status"), [("suspend", "Suspended"), ("unsubscribe", "Unsubscribed")])
def test_out_of_band_billing_changes_make_endpoints_unhealthy_reversibly(emulator, ml_client, action, status):
    subscribe_and_deploy(ml_client)

    changed = emulator.admin.subscription_action(action, "demo-project", "cohere-sub")
    unhealthy = endpoint(emulator, "cohere-ep")["properties"]["endpointState"]
    emulator.admin.subscription_action("reinstate", "demo-project", "cohere-sub")

    assert changed["properties"]["marketplaceSubscriptionStatus"] == status
    assert unhealthy == "Suspended"
    assert endpoint(emulator, "cohere-ep")["properties"]["endpointState"] == "Online"


def test_resubscribing_a_suspended_subscription_buys_it_again(emulator, ml_client):
    subscribe_and_deploy(ml_client)
    emulator.admin.subscription_action("suspend", "demo-project", "cohere-sub")

    ml_client().marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(name="cohere-sub", model_id=COHERE)
    ).result()

    assert endpoint(emulator, "cohere-ep")["properties"]["endpointState"] == "Online"


def test_the_unhealthy_endpoint_state_is_configurable(emulator, ml_client):
    emulator.admin.reset(unhealthyEndpointState="Unknown")
    subscribe_and_deploy(ml_client)

    emulator.admin.subscription_action("delete", "demo-project", "cohere-sub")

    assert endpoint(emulator, "cohere-ep")["properties"]["endpointState"] == "Unknown"
    assert emulator.arm().request("GET", subscriptions_path(emulator, "cohere-sub")).status_code == 404


def test_get_and_delete_of_a_missing_subscription(emulator, ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client().marketplace_subscriptions.get("nope")

    assert emulator.arm().request("DELETE", subscriptions_path(emulator, "nope")).status_code == 204


def test_subscription_names_follow_the_documented_pattern(emulator):
    response = emulator.arm().request(
        "PUT", subscriptions_path(emulator, "-leading-dash"), body={"properties": {"modelId": COHERE}}
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "InvalidMarketplaceSubscriptionName"
