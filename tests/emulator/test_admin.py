"""The admin API (scenarios, out-of-band state, operations, request log), persistence, TLS and the CLI."""

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator, wait_until
from devstack.emulator.tls import ensure_tls_files
from devstack.envfile import read_env_file

REPO = Path(__file__).resolve().parents[2]
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
ENV_FILE_KEYS = {
    "AZUREML_DEV_URL_MFE",
    "AZURE_RESOURCE_MANAGER_URL",
    "REQUESTS_CA_BUNDLE",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_KEYVAULT_URL",
    "EVENT_GRID_TOPIC_ENDPOINT",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_WORKSPACE",
    "EMULATOR_ADMIN_URL",
    "AZURE_TENANT_ID",
    "DEMO_BROKER_OBJECT_ID",
    "DEMO_REQUESTER_OBJECT_ID",
    "DEMO_REQUESTER_CLIENT_ID",
    "DEMO_READER_OBJECT_ID",
    "DEMO_READER_CLIENT_ID",
    *(f"DEMO_{role}_{field}" for role in ("APPROVER", "AUDITOR", "OUTSIDER") for field in ("OBJECT_ID", "CLIENT_ID")),
    # Entra ID sign-in (devstack/emulator/entra.py) and the local host's Easy Auth.
    "EMULATOR_AUTHORITY",
    "BROKER_API_CLIENT_ID",
    "BROKER_API_SCOPE",
    "DEVSTACK_EASY_AUTH_ISSUER",
    "DEVSTACK_EASY_AUTH_CLIENT_ID",
    "DEMO_BROKER_CLIENT_ID",
    "DEMO_BROKER_CLIENT_SECRET",
    "DEMO_REQUESTER_CLIENT_SECRET",
    "DEMO_READER_CLIENT_SECRET",
    "DEMO_APPROVER_CLIENT_SECRET",
    "DEMO_AUDITOR_CLIENT_SECRET",
    "DEMO_OUTSIDER_CLIENT_SECRET",
}


def create_endpoint(emulator, name: str = "ep", model: str = DEEPSEEK):
    return emulator.arm().request(
        "PUT",
        f"{emulator.workspace_path()}/serverlessEndpoints/{name}",
        body={"properties": {"modelSettings": {"modelId": model}}, "location": "eastus2"},
    )


def test_the_demo_scenario_has_what_the_issue_asks_for():
    demo = load_scenario_document()
    roles = {(item["principalId"], item["roleName"], item["scope"]) for item in demo["roleAssignments"]}
    names = {item["displayName"]: item["objectId"] for item in demo["principals"]}
    group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo"

    assert {(item["name"], item["location"]) for item in demo["workspaces"]} == {
        ("demo-project", "eastus2"),
        ("demo-project-westeurope", "westeurope"),
    }
    assert (names["broker"], "Azure AI Developer", group) in roles
    assert (
        names["broker"],
        "Key Vault Secrets Officer",
        f"{group}/providers/Microsoft.KeyVault/vaults/kv-demo",
    ) in roles
    assert [role for principal, role, _ in roles if principal == names["requester"]] == ["Azure AI Developer"]
    assert (
        names["requester"],
        "Azure AI Developer",
        f"{group}/providers/Microsoft.MachineLearningServices/workspaces/demo-project",
    ) in roles
    assert [role for principal, role, _ in roles if principal == names["reader"]] == ["Reader"]


def test_the_demo_catalog_classifies_the_documented_models(emulator):
    catalog = emulator.state.catalog
    deepseek = catalog.get(DEEPSEEK)
    cohere = catalog.get("azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024")

    assert not deepseek.requires_marketplace_subscription
    assert cohere.requires_marketplace_subscription
    assert [cohere.available_in(region) for region in ("eastus2", "westeurope")] == [True, False]
    assert [deepseek.available_in(region) for region in ("eastus2", "westeurope")] == [True, False]


def test_reset_forgets_resources_and_applies_overrides(emulator):
    create_endpoint(emulator)
    emulator.admin.add_fault(pathRegex="/nothing", status=500)

    emulator.admin.reset(timings={"lroSeconds": None})

    assert emulator.admin.state() == {"endpoints": [], "marketplaceSubscriptions": [], "operations": []}
    assert emulator.admin.call("GET", "/faults") == []
    assert emulator.admin.call("GET", "/scenario")["timings"] == {"lroSeconds": None, "retryAfterMs": 50}
    create_endpoint(emulator)
    time.sleep(0.3)
    assert emulator.admin.operations(pending=True)[0]["status"] == "InProgress"


def test_loading_a_scenario_replaces_the_world(emulator):
    document = load_scenario_document()
    document["workspaces"] = [{**document["workspaces"][0], "name": "other-project"}]

    emulator.admin.load_scenario(document)

    workspace = emulator.workspace_path("other-project")
    assert emulator.arm().request("GET", workspace, api_version="2024-10-01-preview").status_code == 200
    broken = requests.post(
        f"{emulator.env['EMULATOR_ADMIN_URL']}/scenario", json={"tenantId": "x"}, verify=emulator.ca_bundle, timeout=10
    )
    assert broken.status_code == 400


def test_endpoint_states_can_be_forced_and_released(emulator):
    create_endpoint(emulator)
    emulator.admin.complete_operations()

    forced = emulator.admin.set_endpoint_state("demo-project", "ep", endpointState="Suspending")
    released = emulator.admin.set_endpoint_state("demo-project", "ep", endpointState=None)
    failed = emulator.admin.set_endpoint_state("demo-project", "ep", provisioningState="Failed")

    assert forced["properties"]["endpointState"] == "Suspending"
    assert released["properties"]["endpointState"] == "Online"
    assert failed["properties"]["endpointState"] == "CreationFailed"
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.set_endpoint_state("demo-project", "ep", endpointState="Unhealthy")


def test_operations_complete_by_time_or_by_the_admin_api(emulator):
    emulator.admin.call("PUT", "/timings", {"lroSeconds": None})
    first = create_endpoint(emulator, "first").headers["Azure-AsyncOperation"]
    create_endpoint(emulator, "second", "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324")
    pending = emulator.admin.operations(pending=True)
    assert len(pending) == 2

    completed = emulator.admin.complete_operations(pending[0]["name"])
    emulator.admin.call("PUT", "/timings", {"lroSeconds": 0.05})
    create_endpoint(emulator, "third", "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct")

    assert [item["status"] for item in completed] == ["Succeeded"]
    assert emulator.arm().request("GET", first, api_version=None).json()["status"] == "Succeeded"
    wait_until(lambda: len(emulator.admin.operations(pending=True)) == 1)
    assert emulator.admin.operations(pending=True)[0]["resourceName"] == "second"
    with pytest.raises(RuntimeError, match="404"):
        emulator.admin.complete_operations("no-such-operation")


def test_the_request_log_counts_per_route_with_statuses_and_principals(emulator):
    create_endpoint(emulator)
    emulator.arm().request("GET", f"{emulator.workspace_path()}/serverlessEndpoints/ep")
    emulator.arm().request("GET", f"{emulator.workspace_path()}/serverlessEndpoints/missing")

    log = emulator.admin.requests()
    route = (
        "arm:/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
        "Microsoft.MachineLearningServices/workspaces/{workspaceName}/serverlessEndpoints/{name}"
    )

    assert log["counts"] == {f"PUT {route}": 1, f"GET {route}": 2}
    assert log["countsByStatus"] == {f"PUT {route} 201": 1, f"GET {route} 200": 1, f"GET {route} 404": 1}
    assert {entry["principal_id"] for entry in log["entries"]} == {emulator.env["DEMO_BROKER_OBJECT_ID"]}
    emulator.admin.clear_requests()
    assert emulator.admin.requests()["total"] == 0


def test_a_state_file_keeps_resources_across_restarts(tmp_path):
    state_file = tmp_path / "state.json"
    with running_emulator(state_file=state_file, timings={"lroSeconds": 0.0}) as emulator:
        create_endpoint(emulator)
        keys = emulator.arm().request("POST", f"{emulator.workspace_path()}/serverlessEndpoints/ep/listKeys").json()

    with running_emulator(state_file=state_file) as restarted:
        endpoint = restarted.arm().request("GET", f"{restarted.workspace_path()}/serverlessEndpoints/ep").json()
        keys_after = (
            restarted.arm().request("POST", f"{restarted.workspace_path()}/serverlessEndpoints/ep/listKeys").json()
        )

    assert endpoint["properties"]["provisioningState"] == "Succeeded"
    assert keys_after == keys


def test_tls_files_are_made_once_and_name_the_loopback_host(tmp_path):
    files = ensure_tls_files(tmp_path)
    ca_before = files.ca_cert.read_bytes()

    again = ensure_tls_files(tmp_path)

    assert again.ca_cert.read_bytes() == ca_before
    certificate = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(files.server_cert, files.server_key)


def test_the_cli_writes_the_env_file_and_stops_on_sigterm(tmp_path):
    env_file = tmp_path / "emulator.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.emulator",
            "--port",
            "0",
            "--env-file",
            str(env_file),
            "--tls-dir",
            str(tmp_path / "tls"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(env_file.exists, timeout=20, interval=0.05)
        values = read_env_file(env_file)
        health = requests.get(f"{values['EMULATOR_ADMIN_URL']}/health", verify=values["REQUESTS_CA_BUNDLE"], timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=15)

    assert set(values) == ENV_FILE_KEYS
    assert values["AZUREML_DEV_URL_MFE"] == values["AZURE_RESOURCE_MANAGER_URL"]
    assert values["IDENTITY_ENDPOINT"] == f"{values['AZURE_RESOURCE_MANAGER_URL']}/msi/token"
    assert (values["AZURE_RESOURCE_GROUP"], values["AZURE_WORKSPACE"]) == ("rg-demo", "demo-project")
    assert health.json()["status"] == "ok"
    assert exit_code == 0
    assert not env_file.exists()
