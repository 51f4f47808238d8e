"""The scan with the real adapters against the emulator (ARM, RBAC, Key Vault, faults) and Azurite (table, queue)."""

from __future__ import annotations

import pytest

from shared.deployment import ConditionType
from shared.key_secrets import KEY_FINGERPRINT_TAG, SECRET_CONTENT_TYPE, key_fingerprint

from .emulated import LLAMA, EmulatedBroker

pytestmark = pytest.mark.integration


def workspaces(broker: EmulatedBroker, *names: str) -> str:
    return ",".join(broker.workspace(name) for name in names)


def test_a_subscription_deleted_out_of_band_is_found_alerted_once_and_resolved_once(deployed: EmulatedBroker):
    made = deployed.record_deployment("demo-project", "llama-ep", tickets=("INC-42",))
    scanner = deployed.scanner(HYGIENE_WORKSPACES=workspaces(deployed, "demo-project", "demo-project-westeurope"))
    assert scanner.scan()["findings"]["opened"] == 0
    assert deployed.new_alerts() == []

    deployed.emulator.admin.subscription_action("delete", "demo-project", "llama-sub")
    deployed.clock.advance(minutes=15)
    scanner.scan()
    opened = deployed.new_alerts()
    degraded = deployed.deployment(made.id)
    deployed.clock.advance(minutes=15)
    scanner.scan()
    repeated = deployed.new_alerts()
    deployed.subscribe("demo-project", "llama-sub", LLAMA)
    deployed.clock.advance(minutes=15)
    report = scanner.scan()
    resolved = deployed.new_alerts()

    llama = deployed.endpoint_id("demo-project", "llama-ep")
    assert opened == [("opened", "endpoint-unhealthy", llama)]
    assert repeated == []
    assert resolved == [("resolved", "endpoint-unhealthy", llama)]
    [finding] = deployed.findings("endpoint-unhealthy")
    assert finding.state == "resolved"
    signals = {signal["signal"] for signal in deployed.received[0]["data"]["evidence"]["signals"]}
    assert "subscription-missing" in signals
    assert report["workspaces"] == {"scanned": 2, "reachable": 2, "unreachable": 0}
    assert deployed.store.latest_report() == report
    # The finding names the deployment, and the deployment heard about it both ways (in the Azurite run store).
    alert = deployed.received[0]
    assert (alert["deploymentid"], alert["data"]["runId"], alert["data"]["tickets"]) == (made.id, "run-1", ["INC-42"])
    assert f"POST /api/deployments/{made.id}/repair" in alert["data"]["recommendedAction"]
    healthy = {item.type.value: (item.status, item.reason) for item in degraded.status.conditions}["Healthy"]
    assert (degraded.status.phase, healthy, degraded.status.open_findings) == (
        "Degraded",
        ("False", "SubscriptionMissing"),
        (finding.key,),
    )
    ready = deployed.deployment(made.id)
    assert (ready.status.phase, ready.condition(ConditionType.HEALTHY).reason, ready.status.open_findings) == (
        "Ready",
        "Online",
        (),
    )


def test_workspaces_answering_500_and_403_do_not_stop_the_scan(deployed: EmulatedBroker):
    deployed.emulator.admin.subscription_action("suspend", "demo-project", "cohere-sub")
    deployed.emulator.admin.add_fault(pathRegex="workspaces/demo-project-westeurope/", status=500)
    scanner = deployed.scanner(
        HYGIENE_WORKSPACES=workspaces(deployed, "demo-project", "demo-project-westeurope", "locked-project")
    )

    report = scanner.scan()

    unreachable = {record.resource_id: record.evidence for record in deployed.findings("workspace-unreachable")}
    assert {workspace: evidence["status"] for workspace, evidence in unreachable.items()} == {
        deployed.workspace("demo-project-westeurope"): 500,
        deployed.workspace("locked-project"): 403,
    }
    assert unreachable[deployed.workspace("locked-project")]["code"] == "AuthorizationFailed"
    assert [record.resource_id for record in deployed.findings("endpoint-unhealthy")] == [
        deployed.endpoint_id("demo-project", "cohere-ep")
    ]
    assert report["workspaces"] == {"scanned": 3, "reachable": 1, "unreachable": 2}
    # The West Europe project's secrets are not called orphaned just because its endpoints could not be listed.
    assert deployed.findings("secrets-orphaned") == []


def test_throttled_reads_are_retried_after_retry_after(deployed: EmulatedBroker):
    deployed.emulator.admin.add_fault(
        pathRegex="workspaces/demo-project/serverlessEndpoints$", method="GET", status=429, retryAfter=0.05, count=2
    )
    deployed.emulator.admin.clear_requests()
    scanner = deployed.scanner(HYGIENE_WORKSPACES=workspaces(deployed, "demo-project"))

    report = scanner.scan()

    assert deployed.sleeps == [0.05, 0.05]
    assert report["workspaces"]["unreachable"] == 0
    statuses = [
        entry["status"]
        for entry in deployed.emulator.admin.requests()["entries"]
        if entry["path"].endswith("/demo-project/serverlessEndpoints")
    ]
    assert statuses == [429, 429, 200]


def test_secret_rules_and_remediation_against_the_emulated_vault(deployed: EmulatedBroker):
    demo = deployed.workspace("demo-project")
    deployed.ml.regenerate_key(demo, "llama-ep", "primary")
    deployed.emulator.admin.complete_operations()
    deployed.ml.begin_delete_endpoint(demo, "phi-ep")
    deployed.emulator.admin.complete_operations()
    scanner = deployed.scanner(
        HYGIENE_WORKSPACES=workspaces(deployed, "demo-project"), HYGIENE_REMEDIATION="secrets-orphaned=disable-secrets"
    )

    report = scanner.scan()

    [mismatch] = deployed.findings("secrets-missing")
    assert mismatch.resource_id == deployed.endpoint_id("demo-project", "llama-ep")
    assert mismatch.evidence["mismatchedSecrets"][0].endswith("-primary")
    [orphaned] = deployed.findings("secrets-orphaned")
    assert orphaned.resource_id == deployed.endpoint_id("demo-project", "phi-ep")
    assert report["remediation"]["done"] == 1
    disabled = {secret.name: secret.enabled for secret in deployed.vault.list_secrets() if "-phi-ep-" in secret.name}
    assert len(disabled) == 2
    assert not any(disabled.values())
    keys = deployed.ml.list_keys(demo, "llama-ep")
    stored = str(deployed.store.query(page_size=100).records) + str(deployed.received) + str(report)
    assert keys.primary not in stored
    assert keys.secondary not in stored


def test_key_checks_read_no_secret_value_and_an_old_unfingerprinted_secret_is_read_once(deployed: EmulatedBroker):
    demo = deployed.workspace("demo-project")
    [old] = [secret for secret in deployed.vault.list_secrets() if secret.name.startswith("serverless-phi-ep-")][:1]
    value = deployed.vault.get_secret_value(old.name)
    legacy = {name: tag for name, tag in old.tags.items() if name != KEY_FINGERPRINT_TAG}
    deployed.vault.set_secret(old.name, value, content_type=SECRET_CONTENT_TYPE, tags=legacy)
    scanner = deployed.scanner(HYGIENE_WORKSPACES=workspaces(deployed, "demo-project"))

    def scan_counting() -> tuple[dict, dict[str, int]]:
        deployed.emulator.admin.clear_requests()
        report = scanner.scan()
        return report, deployed.emulator.admin.requests(limit=0)["counts"]

    first, first_calls = scan_counting()
    deployed.clock.advance(hours=25)
    again, again_calls = scan_counting()

    value_reads = [route for route in first_calls if route.startswith("GET vault:") and "/secrets/{name}" in route]
    assert sum(first_calls[route] for route in value_reads) == 1, first_calls
    # Four endpoints' secrets: the West Europe project is scanned too, named by its secrets' tags.
    assert first["keyDrift"]["comparedBy"] == {"fingerprint": 7, "value": 0, "tagged": 1}
    [tagged] = [secret for secret in deployed.vault.list_secrets() if secret.name == old.name]
    keys = deployed.ml.list_keys(demo, "phi-ep")
    assert tagged.tags[KEY_FINGERPRINT_TAG] == key_fingerprint(getattr(keys, old.tags["keyType"]))
    assert not any(route.startswith("GET vault:") and "/secrets/{name}" in route for route in again_calls)
    assert again["keyDrift"]["comparedBy"] == {"fingerprint": 8, "value": 0, "tagged": 0}
    assert deployed.findings("secrets-missing") == []
