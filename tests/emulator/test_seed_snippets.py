"""The seed document's Python SDK snippets, run unmodified against the emulator.

Only the MLClient construction differs (a managed-identity credential and the sourced emulator environment instead of
InteractiveBrowserCredential and placeholders). The snippets below are verbatim copies of the document's python pivot;
the first test proves it whenever the shared reference folder is beside the repository.
"""

import os
import re
import textwrap
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

SEED = Path(__file__).resolve().parents[2] / ".." / "shared" / "seeds" / "deploy-models-serverless.md"

CLIENT = """\
from azure.ai.ml import MLClient
from azure.identity import ManagedIdentityCredential
from azure.ai.ml.entities import MarketplaceSubscription, ServerlessEndpoint

client = MLClient(
    credential=ManagedIdentityCredential(),
    subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
    resource_group_name=os.environ["AZURE_RESOURCE_GROUP"],
    workspace_name=os.environ["AZURE_WORKSPACE"],
)
"""
SUBSCRIBE = """\
model_id="azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
subscription_name="Cohere-command-r-08-2024"

marketplace_subscription = MarketplaceSubscription(
    model_id=model_id,
    name=subscription_name,
)

marketplace_subscription = client.marketplace_subscriptions.begin_create_or_update(
    marketplace_subscription
).result()
"""
LIST_SUBSCRIPTIONS = """\
marketplace_sub_list = client.marketplace_subscriptions.list()

for sub in marketplace_sub_list:
    print(sub.as_dict())
"""
# The document prints this create twice ("Create the serverless endpoint", then "see the endpoints deployed").
CREATE_ENDPOINT = """\
endpoint_name="DeepSeek-R1-qwerty"

serverless_endpoint = ServerlessEndpoint(
    name=endpoint_name,
    model_id=model_id
)

created_endpoint = client.serverless_endpoints.begin_create_or_update(
    serverless_endpoint
).result()
"""
GET_KEYS = """\
endpoint_keys = client.serverless_endpoints.get_keys(endpoint_name)
print(endpoint_keys.primary_key)
print(endpoint_keys.secondary_key)
"""
DELETE_ENDPOINT = "client.serverless_endpoints.begin_delete(endpoint_name).wait()\n"
DELETE_SUBSCRIPTION = "client.marketplace_subscriptions.begin_delete(subscription_name).wait()\n"
# "Copy the Model ID without including the model version" (sold-directly tab).
DEEPSEEK_R1 = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


def python_pivot_snippets(document: str) -> list[str]:
    pivot = document[document.index('::: zone pivot="python-sdk"') :]
    pivot = pivot[: pivot.index("::: zone-end")]
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", pivot, re.DOTALL)]


def test_snippets_are_verbatim_copies_of_the_seed():
    if not SEED.exists():
        pytest.skip("the shared reference folder is not beside the repository")
    snippets = python_pivot_snippets(SEED.read_text(encoding="utf-8"))
    assert snippets[2:] == [
        SUBSCRIBE,
        LIST_SUBSCRIPTIONS,
        CREATE_ENDPOINT,
        CREATE_ENDPOINT,
        GET_KEYS,
        DELETE_ENDPOINT,
        DELETE_SUBSCRIPTION,
    ]
    assert "InteractiveBrowserCredential" in snippets[1]


def run(snippet: str, namespace: dict) -> None:
    exec(compile(snippet, "<seed snippet>", "exec"), namespace)


@pytest.mark.usefixtures("emulator_env")
def test_partner_model_flow_runs_as_documented(emulator, capsys):
    namespace = {"os": os}
    run(CLIENT, namespace)
    client = namespace["client"]

    run(SUBSCRIBE, namespace)
    assert namespace["marketplace_subscription"].status == "subscribed"
    assert namespace["marketplace_subscription"].marketplace_plan.publisher_id == "cohere"

    capsys.readouterr()
    run(LIST_SUBSCRIPTIONS, namespace)
    printed = capsys.readouterr().out
    assert "'name': 'Cohere-command-r-08-2024'" in printed
    assert "'status': 'subscribed'" in printed

    # The document's endpoint snippets reuse `model_id`, still the Cohere model here: a partner endpoint.
    run(CREATE_ENDPOINT, namespace)
    created = namespace["created_endpoint"]
    assert created.provisioning_state == "succeeded"
    assert created.model_id == namespace["model_id"]
    assert re.fullmatch(r"https://deepseek-r1-qwerty-[a-z0-9]{4}\.eastus2\.models\.ai\.azure\.com", created.scoring_uri)
    run(CREATE_ENDPOINT, namespace)
    assert namespace["created_endpoint"].scoring_uri == created.scoring_uri
    assert client.serverless_endpoints.get("DeepSeek-R1-qwerty").scoring_uri == created.scoring_uri
    assert [endpoint.name for endpoint in client.serverless_endpoints.list()] == ["DeepSeek-R1-qwerty"]

    capsys.readouterr()
    run(GET_KEYS, namespace)
    primary, secondary = capsys.readouterr().out.split()
    keys = emulator.arm().request(
        "POST", f"{emulator.workspace_path()}/serverlessEndpoints/DeepSeek-R1-qwerty/listKeys"
    )
    assert keys.json() == {"primaryKey": primary, "secondaryKey": secondary}
    assert primary != secondary

    run(DELETE_ENDPOINT, namespace)
    with pytest.raises(ResourceNotFoundError):
        client.serverless_endpoints.get("DeepSeek-R1-qwerty")
    run(DELETE_SUBSCRIPTION, namespace)
    assert list(client.marketplace_subscriptions.list()) == []


@pytest.mark.usefixtures("emulator_env")
def test_sold_directly_model_flow_needs_no_subscription(emulator, capsys):
    namespace = {"os": os, "model_id": DEEPSEEK_R1}
    run(CLIENT, namespace)

    run(CREATE_ENDPOINT, namespace)
    assert namespace["created_endpoint"].provisioning_state == "succeeded"
    capsys.readouterr()
    run(GET_KEYS, namespace)
    assert len(capsys.readouterr().out.split()) == 2
    run(DELETE_ENDPOINT, namespace)

    assert emulator.admin.state()["endpoints"] == []
    puts = [entry for entry in emulator.admin.requests()["entries"] if entry["method"] == "PUT"]
    assert [entry["path"].rsplit("/", 2)[-2] for entry in puts] == ["serverlessEndpoints"]
