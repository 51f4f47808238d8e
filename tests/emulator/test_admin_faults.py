"""Fault rules and ARM-like throttling, seen through real SDK clients and raw calls."""

import time

import pytest
import requests
from azure.identity import ManagedIdentityCredential

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


def list_path(emulator) -> str:
    return f"{emulator.workspace_path()}/serverlessEndpoints"


def test_a_counted_503_is_retried_by_the_sdk(emulator, ml_client):
    rule = emulator.admin.add_fault(
        pathRegex=r"/serverlessEndpoints$", method="GET", status=503, retryAfter=0.1, count=1
    )

    assert list(ml_client().serverless_endpoints.list()) == []

    statuses = [
        entry["status"] for entry in emulator.admin.requests()["entries"] if entry["path"].endswith("Endpoints")
    ]
    assert statuses == [503, 200]
    assert emulator.admin.call("GET", "/faults")[0] | {"remaining": 0} == rule | {"remaining": 0, "hits": 1}


def test_a_fault_answers_with_its_status_retry_after_and_envelope(emulator):
    emulator.admin.add_fault(pathRegex="serverlessendpoints", method="GET", status=429, retryAfter=7, count=1)

    throttled = emulator.arm().request("GET", list_path(emulator))
    after = emulator.arm().request("GET", list_path(emulator))

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert after.status_code == 200


def test_rules_match_on_method_and_probability(emulator):
    emulator.admin.add_fault(pathRegex="serverlessEndpoints", method="PUT", status=500)
    emulator.admin.add_fault(pathRegex="/workspaces/demo-project$", status=500, probability=0.5, seed=7)

    reads = emulator.arm().request("GET", list_path(emulator)).status_code
    writes = (
        emulator.arm()
        .request(
            "PUT",
            f"{list_path(emulator)}/ep",
            body={"properties": {"modelSettings": {"modelId": DEEPSEEK}}, "location": "eastus2"},
        )
        .status_code
    )
    sampled = [
        emulator.arm().request("GET", emulator.workspace_path(), api_version="2024-10-01-preview").status_code
        for _ in range(40)
    ]

    assert (reads, writes) == (200, 500)
    assert 5 < sampled.count(500) < 35
    assert set(sampled) == {200, 500}


def test_latency_delays_the_answer(emulator):
    emulator.admin.add_fault(pathRegex="serverlessEndpoints$", latencyMs=300, count=1)

    started = time.perf_counter()
    response = emulator.arm().request("GET", list_path(emulator))

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_a_connection_reset_drops_the_connection_and_the_sdk_retries(emulator, ml_client):
    emulator.admin.add_fault(pathRegex="serverlessEndpoints$", resetConnection=True, count=2)

    with pytest.raises(requests.ConnectionError):
        emulator.arm().request("GET", list_path(emulator))
    assert list(ml_client().serverless_endpoints.list()) == []
    statuses = [
        entry["status"] for entry in emulator.admin.requests()["entries"] if entry["path"].endswith("Endpoints")
    ]
    assert statuses == [0, 0, 200]


def test_faults_reach_the_identity_endpoint_and_the_vaults_too(emulator, emulator_env):
    emulator.admin.add_fault(pathRegex="^/msi/token", status=500, count=1)
    emulator.admin.add_fault(pathRegex="^/secrets", status=503, count=1)

    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    vault = requests.get(
        f"{emulator.vault_url}secrets", params={"api-version": "7.5"}, verify=emulator.ca_bundle, timeout=10
    )

    assert token.token
    assert vault.status_code == 503
    assert {rule["hits"] for rule in emulator.admin.call("GET", "/faults")} == {1}


def test_throttling_is_off_by_default_yet_answers_report_the_remaining_requests(emulator):
    arm = emulator.arm()
    reads = [arm.request("GET", list_path(emulator)) for _ in range(3)]
    missing = arm.request("GET", f"{list_path(emulator)}/absent")

    assert [answer.status_code for answer in reads] == [200, 200, 200]
    remaining = [int(answer.headers["x-ms-ratelimit-remaining-subscription-reads"]) for answer in [*reads, missing]]
    assert all(0 <= count <= 249 for count in remaining)
    assert missing.status_code == 404


def test_throttling_empties_a_read_bucket_per_subscription(emulator):
    emulator.admin.set_throttling(enabled=True, reads={"capacity": 3, "refillPerSecond": 0.5})
    arm = emulator.arm()

    answers = [arm.request("GET", list_path(emulator)) for _ in range(4)]
    write = arm.request(
        "PUT",
        f"{list_path(emulator)}/ep",
        body={"properties": {"modelSettings": {"modelId": DEEPSEEK}}, "location": "eastus2"},
    )

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["x-ms-ratelimit-remaining-subscription-reads"] for answer in answers] == ["2", "1", "0", "0"]
    assert answers[3].headers["Retry-After"] == "2"
    assert answers[3].json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert (
        answers[3]
        .json()["error"]["message"]
        .startswith(f"Number of 'read' requests for subscription '{emulator.env['AZURE_SUBSCRIPTION_ID']}' actor ")
    )
    assert write.status_code == 201
    assert write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"


def test_the_sdk_waits_out_throttling(emulator, ml_client):
    emulator.admin.set_throttling(enabled=True, reads={"capacity": 1, "refillPerSecond": 2})
    client = ml_client()
    emulator.arm().request("GET", list_path(emulator))

    assert list(client.serverless_endpoints.list()) == []

    statuses = [
        entry["status"] for entry in emulator.admin.requests()["entries"] if entry["path"].endswith("Endpoints")
    ]
    assert statuses == [200, 429, 200]
