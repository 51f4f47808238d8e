"""ARM's headers on every answer: the client's correlation ids echoed, the remaining subscription requests, and the
poll delay of accepted operations in whole seconds (retry-after-ms only for the sub-second timings tests ask for)."""

import uuid

import pytest
import requests

from devstack.emulator.api_schemas import catalog
from devstack.emulator.testing import running_emulator

from .schema_checks import record_contract

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
STABLE = "2026-07-01"
BODY = {
    "properties": {"authMode": "Key", "modelSettings": {"modelId": DEEPSEEK}},
    "sku": {"name": "Consumption"},
    "location": "eastus2",
}


def endpoint_path(emulator, name: str = "ep") -> str:
    return f"{emulator.workspace_path()}/serverlessEndpoints/{name}"


def call(emulator, method: str, path: str, *, body=None, headers=None, api_version: str | None = STABLE):
    return emulator.arm().request(method, path, api_version=api_version, body=body, headers=headers)


def test_a_clients_correlation_id_is_echoed_on_success_errors_faults_and_polls(emulator):
    correlation = str(uuid.uuid4())
    headers = {"x-ms-correlation-request-id": correlation, "x-ms-client-request-id": "client-1"}
    emulator.admin.add_fault(pathRegex="/serverlessEndpoints$", method="GET", status=503, count=1)

    created = call(emulator, "PUT", endpoint_path(emulator), body=BODY, headers=headers)
    poll = call(emulator, "GET", created.headers["Azure-AsyncOperation"], headers=headers, api_version=None)
    missing = call(emulator, "GET", endpoint_path(emulator, "absent"), headers=headers)
    faulted = call(emulator, "GET", f"{emulator.workspace_path()}/serverlessEndpoints", headers=headers)
    unauthenticated = requests.get(
        f"{emulator.arm_url}{endpoint_path(emulator)}",
        params={"api-version": STABLE},
        headers=headers,
        verify=emulator.ca_bundle,
        timeout=10,
    )

    answers = [created, poll, missing, faulted, unauthenticated]
    assert [answer.status_code for answer in answers] == [201, 200, 404, 503, 401]
    assert {answer.headers["x-ms-correlation-request-id"] for answer in answers} == {correlation}
    assert {answer.headers["x-ms-client-request-id"] for answer in answers} == {"client-1"}
    assert len({answer.headers["x-ms-request-id"] for answer in answers}) == len(answers)


def test_without_a_client_correlation_id_arm_makes_one_up(emulator):
    answer = call(emulator, "GET", endpoint_path(emulator, "absent"))

    assert uuid.UUID(answer.headers["x-ms-correlation-request-id"])
    assert "x-ms-client-request-id" not in answer.headers


def test_answers_report_the_remaining_reads_writes_and_deletes(emulator):
    write = call(emulator, "PUT", endpoint_path(emulator), body=BODY)
    read = call(emulator, "GET", endpoint_path(emulator))
    delete = call(emulator, "DELETE", endpoint_path(emulator))
    keys = call(emulator, "POST", f"{endpoint_path(emulator)}/listKeys")

    assert int(write.headers["x-ms-ratelimit-remaining-subscription-writes"]) == 199
    assert int(read.headers["x-ms-ratelimit-remaining-subscription-reads"]) == 249
    assert int(delete.headers["x-ms-ratelimit-remaining-subscription-deletes"]) == 199
    assert int(keys.headers["x-ms-ratelimit-remaining-subscription-writes"]) in {198, 199}


def test_accepted_operations_carry_retry_after_in_whole_seconds_by_default():
    # No timings override: ARM's default poll delay, 10 s (the minimum the spec allows on 202s).
    with running_emulator(timings={"lroSeconds": None}) as emulator:
        contract = record_contract(emulator)
        assert emulator.state.scenario.timings.retry_after_ms == 10_000
        created = call(emulator, "PUT", endpoint_path(emulator), body=BODY)
        polled = call(emulator, "GET", created.headers["Azure-AsyncOperation"], api_version=None)
        emulator.admin.complete_operations()
        deleted = call(emulator, "DELETE", endpoint_path(emulator), api_version="2024-01-01-preview")
        result = call(emulator, "GET", deleted.headers["Location"], api_version=None)

    spec = catalog().header_schema("2024-01-01-preview", "Retry-After")
    for answer in (created, polled, deleted, result):
        assert answer.headers["Retry-After"] == "10"
        assert "retry-after-ms" not in answer.headers
    assert spec["minimum"] <= int(deleted.headers["Retry-After"]) <= spec["maximum"]
    assert (deleted.status_code, result.status_code) == (202, 202)
    assert contract.violations == []


@pytest.mark.parametrize(
    ("milliseconds", "expected"),
    [(2500, {"Retry-After": "3"}), (60_000, {"Retry-After": "60"}), (50, {"retry-after-ms": "50"})],
)
def test_the_poll_delay_follows_the_scenario_timing(milliseconds, expected):
    with running_emulator(timings={"lroSeconds": None, "retryAfterMs": milliseconds}) as emulator:
        created = call(emulator, "PUT", endpoint_path(emulator), body=BODY)

    delay = {
        name: value for name, value in created.headers.items() if name.lower() in {"retry-after", "retry-after-ms"}
    }
    assert delay == expected


@pytest.mark.parametrize(("seconds", "expected"), [(7, {"Retry-After": "7"}), (0.25, {"retry-after-ms": "250"})])
def test_a_fault_delay_is_whole_seconds_or_milliseconds(emulator, seconds, expected):
    emulator.admin.add_fault(pathRegex="/serverlessEndpoints/", method="GET", status=429, retryAfter=seconds, count=1)

    throttled = call(emulator, "GET", endpoint_path(emulator))

    delay = {
        name: value for name, value in throttled.headers.items() if name.lower() in {"retry-after", "retry-after-ms"}
    }
    assert (throttled.status_code, delay) == (429, expected)
