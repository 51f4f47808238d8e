"""Every request body the broker sends validates against the official schema of the api-version it sends it at."""

from devstack.emulator.api_schemas import catalog
from shared.adapters.connections import CONNECTIONS_API_VERSION, api_key_connection_body
from shared.adapters.machine_learning import (
    ML_API_VERSION,
    WORKSPACE_API_VERSION,
    endpoint_body,
    regenerate_keys_body,
    subscription_body,
)

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"


def bodies() -> dict[str, dict]:
    return {
        "serverlessEndpoint": endpoint_body(
            model_id=COHERE, location="eastus2", content_safety="Disabled", tags={"a": "b"}
        ),
        "marketplaceSubscription": subscription_body(COHERE),
        "regenerateKeysRequest": regenerate_keys_body("secondary"),
    }


def test_the_machine_learning_bodies_validate_at_the_api_version_they_are_sent_at():
    schemas = catalog()

    for role, body in bodies().items():
        assert schemas.request_errors(ML_API_VERSION, role, body) == [], role
    for content_safety in ("Enabled", "Disabled"):
        body = endpoint_body(model_id=COHERE, location="eastus2", content_safety=content_safety, tags={})
        assert schemas.request_errors(ML_API_VERSION, "serverlessEndpoint", body) == []
    for key_type in ("primary", "secondary"):
        assert schemas.request_errors(ML_API_VERSION, "regenerateKeysRequest", regenerate_keys_body(key_type)) == []


def test_the_connection_body_validates_at_the_api_version_it_is_sent_at():
    body = api_key_connection_body(
        category="Serverless", target="https://ep-abcd.eastus2.models.ai.azure.com", key="k", metadata={"a": "b"}
    )

    assert catalog().request_errors(CONNECTIONS_API_VERSION, "connection", body) == []


def test_the_api_version_is_the_newest_stable_one_and_serves_every_call():
    schemas = catalog()
    stable = [version for version in schemas.versions("serverlessEndpoint") if not version.endswith("-preview")]

    assert ML_API_VERSION == WORKSPACE_API_VERSION == CONNECTIONS_API_VERSION == max(stable) == "2026-07-01"
    for role in ("serverlessEndpoint", "endpointKeys", "marketplaceSubscription", "workspace", "connection"):
        assert schemas.has(ML_API_VERSION, role), role


def test_the_old_api_version_would_refuse_the_endpoint_body():
    # Why the broker moved: at 2024-01-01-preview contentSafety does not exist and unknown properties are refused.
    problems = catalog().request_errors("2024-01-01-preview", "serverlessEndpoint", bodies()["serverlessEndpoint"])

    assert [problem.path for problem in problems] == ["properties.contentSafety"]
