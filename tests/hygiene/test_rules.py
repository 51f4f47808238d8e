"""Each rule, through a whole scan over in-memory ports: a case that must be found and one that must not."""

from __future__ import annotations

from datetime import timedelta

from shared.azure_errors import AzureCallError
from shared.hygiene.rules import RULES, run_resource_id
from shared.ports import EndpointKeys
from shared.runs import RunStatus

from .conftest import World
from .fakes import (
    DIRECT_MODEL,
    T0,
    WS_A,
    WS_B,
    endpoint,
    marketplace_subscription,
    run,
)


def healthy_world(world: World) -> None:
    """Two broker endpoints in WS_A, each with its subscription and both secrets stored."""
    for item in (endpoint(WS_A, "llama", subscription="llama-sub"), endpoint(WS_A, "phi", model_id=DIRECT_MODEL)):
        world.ml.add(WS_A, item)
        world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])
    world.ml.subscriptions[WS_A].append(marketplace_subscription(WS_A, "llama-sub"))


def resources(world: World, rule: str) -> list[str]:
    return sorted(record.resource_id for record in world.findings(rule=rule) if record.state != "resolved")


def test_every_rule_is_registered_with_an_id_severity_and_description():
    assert set(RULES) == {
        "endpoint-unhealthy",
        "endpoint-failed",
        "secrets-missing",
        "secrets-orphaned",
        "endpoint-unmanaged",
        "run-stuck",
        "workspace-unreachable",
    }
    for rule in RULES.values():
        assert rule.description
        assert "report" in rule.remediations


def test_a_healthy_world_has_no_findings(world: World):
    healthy_world(world)

    report = world.scan(workspaces=(WS_A,))

    assert world.findings() == []
    assert report["workspaces"] == {"scanned": 1, "reachable": 1, "unreachable": 0}
    assert report["resources"]["endpoints"] == 2


def test_endpoint_unhealthy_when_its_subscription_no_longer_resolves(world: World):
    healthy_world(world)
    world.ml.subscriptions[WS_A].clear()

    world.scan(workspaces=(WS_A,))

    [finding] = world.findings(rule="endpoint-unhealthy")
    assert finding.resource_id == f"{WS_A}/serverlessEndpoints/llama"
    assert finding.state == "open"
    assert [signal["signal"] for signal in finding.evidence["signals"]] == ["subscription-missing"]


def test_endpoint_unhealthy_when_its_subscription_is_suspended_or_unsubscribed(world: World):
    healthy_world(world)
    world.ml.add(WS_A, endpoint(WS_A, "cohere", subscription="cohere-sub"))
    world.ml.subscriptions[WS_A] = [
        marketplace_subscription(WS_A, "llama-sub", "Suspended"),
        marketplace_subscription(WS_A, "cohere-sub", "Unsubscribed"),
    ]

    world.scan(workspaces=(WS_A,), verify_key_values=False)

    assert resources(world, "endpoint-unhealthy") == [
        f"{WS_A}/serverlessEndpoints/cohere",
        f"{WS_A}/serverlessEndpoints/llama",
    ]


def test_the_unhealthy_mapping_is_configurable(world: World):
    healthy_world(world)
    world.ml.subscriptions[WS_A] = [marketplace_subscription(WS_A, "llama-sub", "Suspended")]

    world.scan(workspaces=(WS_A,), unhealthy_subscription_statuses=frozenset({"unsubscribed"}))

    assert resources(world, "endpoint-unhealthy") == []


def test_an_endpoint_state_that_is_not_online_opens_only_after_the_grace_window(world: World):
    healthy_world(world)
    world.ml.endpoints[WS_A][1] = endpoint(WS_A, "phi", model_id=DIRECT_MODEL, endpoint_state="Suspending")

    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(minutes=30))
    [pending] = world.findings(rule="endpoint-unhealthy")
    world.clock.advance(minutes=31)
    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(minutes=30))

    assert pending.state == "pending"
    assert [record.state for record in world.findings(rule="endpoint-unhealthy")] == ["open"]
    assert world.alerts() == [("opened", "endpoint-unhealthy", f"{WS_A}/serverlessEndpoints/phi")]


def test_a_transient_endpoint_state_within_the_grace_window_never_alerts(world: World):
    healthy_world(world)
    world.ml.endpoints[WS_A][1] = endpoint(WS_A, "phi", model_id=DIRECT_MODEL, endpoint_state="Reinstating")
    world.scan(workspaces=(WS_A,))
    world.ml.endpoints[WS_A][1] = endpoint(WS_A, "phi", model_id=DIRECT_MODEL)
    world.clock.advance(minutes=15)

    world.scan(workspaces=(WS_A,))

    assert world.findings() == []
    assert world.alerts() == []


def test_endpoint_failed_for_failed_provisioning_or_failed_states(world: World):
    healthy_world(world)
    world.ml.add(
        WS_A,
        endpoint(WS_A, "broken", provisioning_state="Failed", endpoint_state="CreationFailed"),
        endpoint(WS_A, "stuck-delete", endpoint_state="DeletionFailed"),
    )

    world.scan(workspaces=(WS_A,), disabled_rules=frozenset({"secrets-missing"}))

    assert resources(world, "endpoint-failed") == [
        f"{WS_A}/serverlessEndpoints/broken",
        f"{WS_A}/serverlessEndpoints/stuck-delete",
    ]
    assert resources(world, "endpoint-unhealthy") == []


def test_secrets_missing_names_the_secret_that_is_gone(world: World):
    healthy_world(world)
    primary = next(name for name in world.secrets.secrets if "llama" in name and name.endswith("primary"))
    world.secrets.secrets.pop(primary)

    world.scan(workspaces=(WS_A,))

    [finding] = world.findings(rule="secrets-missing")
    assert finding.resource_id == f"{WS_A}/serverlessEndpoints/llama"
    assert [name.lower() for name in finding.evidence["missingSecrets"]] == [primary]


def test_secrets_missing_when_a_value_no_longer_matches_list_keys_and_the_value_is_never_recorded(world: World):
    healthy_world(world)
    llama = f"{WS_A}/serverlessEndpoints/llama".lower()
    world.ml.keys[llama] = EndpointKeys("rotated-primary-key-value", world.ml.keys[llama].secondary)

    world.scan(workspaces=(WS_A,))

    [finding] = world.findings(rule="secrets-missing")
    [mismatched] = finding.evidence["mismatchedSecrets"]
    assert "-llama-" in mismatched
    assert mismatched.endswith("-primary")
    stored = str(world.table.rows) + str(world.queue.messages)
    assert "rotated-primary-key-value" not in stored
    assert "primary-key-llama" not in stored


def test_secrets_missing_ignores_unmanaged_endpoints_and_workspaces_with_a_run_in_progress(world: World):
    world.ml.add(WS_A, endpoint(WS_A, "handmade", managed=False, model_id=DIRECT_MODEL))
    world.ml.add(WS_B, endpoint(WS_B, "being-made", model_id=DIRECT_MODEL))
    world.runs.add(run("run-busy", WS_B, status=RunStatus.PROVISIONING, created=T0))

    world.scan(workspaces=(WS_A, WS_B))

    assert resources(world, "secrets-missing") == []


def test_secrets_missing_is_inconclusive_when_list_keys_fails(world: World):
    healthy_world(world)
    llama = f"{WS_A}/serverlessEndpoints/llama".lower()
    world.ml.keys[llama] = EndpointKeys("rotated-primary-key-value", "other")
    world.scan(workspaces=(WS_A,))
    del world.ml.keys[llama]  # listKeys now fails: the finding must neither resolve nor alert

    report = world.scan(workspaces=(WS_A,))

    assert [record.state for record in world.findings(rule="secrets-missing")] == ["open"]
    assert [kind for kind, _, _ in world.alerts()] == ["opened"]
    assert any(error.get("rule") == "secrets-missing" for error in report["errors"])


def test_secrets_orphaned_groups_the_secrets_of_an_endpoint_that_is_gone(world: World):
    healthy_world(world)
    world.ml.endpoints[WS_A] = [item for item in world.ml.endpoints[WS_A] if item.name != "phi"]

    world.scan(workspaces=(WS_A,))

    [finding] = world.findings(rule="secrets-orphaned")
    assert finding.resource_id == f"{WS_A}/serverlessEndpoints/phi"
    assert len(finding.secret_names) == 2
    assert all("-phi-" in name for name in finding.secret_names)


def test_secrets_orphaned_needs_the_workspace_to_have_been_read(world: World):
    healthy_world(world)
    world.ml.failures[WS_A] = AzureCallError(500, "InternalServerError", "boom")

    # WS_A is scanned only because the secrets' tags name it; it fails, so nothing can be called orphaned.
    world.scan()

    assert resources(world, "secrets-orphaned") == []
    assert resources(world, "workspace-unreachable") == [WS_A]


def test_endpoint_unmanaged_is_info_and_only_for_endpoints_without_the_broker_tag(world: World):
    healthy_world(world)
    world.ml.add(WS_A, endpoint(WS_A, "handmade", managed=False, model_id=DIRECT_MODEL))

    world.scan(workspaces=(WS_A,))

    [finding] = world.findings(rule="endpoint-unmanaged")
    assert finding.resource_id == f"{WS_A}/serverlessEndpoints/handmade"
    assert finding.severity == "info"


def test_run_stuck_only_for_active_runs_older_than_the_timeout(world: World):
    world.runs.add(
        run("old-active", WS_A, status=RunStatus.PROVISIONING, created=T0 - timedelta(hours=2)),
        run("new-active", WS_A, status=RunStatus.PROVISIONING, created=T0 - timedelta(minutes=10)),
        run("old-done", WS_A, status=RunStatus.SUCCEEDED, created=T0 - timedelta(days=2)),
    )
    world.ml.add(WS_A)

    world.scan(run_stuck_after=timedelta(hours=1))

    assert resources(world, "run-stuck") == [run_resource_id("old-active")]


def test_workspaces_come_from_settings_runs_and_secret_tags_but_not_rejected_runs(world: World):
    world.ml.add(WS_A)
    world.ml.add(WS_B)
    rejected_workspace = WS_B.replace("ws-b", "ws-c")
    world.runs.add(
        run("r1", WS_B),
        run("r2", WS_A.lower()),
        run("r3", rejected_workspace, status=RunStatus.REJECTED),
    )

    report = world.scan(workspaces=(WS_A,))

    assert sorted(world.ml.reads) == sorted([WS_A, WS_A, WS_B, WS_B])  # endpoints and subscriptions, once each
    assert report["workspaces"]["scanned"] == 2


def test_workspace_unreachable_for_403_and_500_without_hiding_the_others(world: World):
    healthy_world(world)
    world.ml.subscriptions[WS_A].clear()
    denied = WS_B
    failing = WS_B.replace("ws-b", "ws-c")
    world.ml.failures[denied] = AzureCallError(403, "AuthorizationFailed", "The client does not have authorization")
    world.ml.failures[failing] = AzureCallError(500, "InternalServerError", "boom")

    report = world.scan(workspaces=(WS_A, denied, failing))

    unreachable = {record.resource_id: record.evidence for record in world.findings(rule="workspace-unreachable")}
    assert {key: value["status"] for key, value in unreachable.items()} == {denied: 403, failing: 500}
    assert resources(world, "endpoint-unhealthy") == [f"{WS_A}/serverlessEndpoints/llama"]
    assert report["workspaces"] == {"scanned": 3, "reachable": 1, "unreachable": 2}


def test_a_subscription_id_is_compared_case_insensitively(world: World):
    item = endpoint(WS_A, "llama", subscription="llama-sub")
    world.ml.add(WS_A, item)
    world.ml.subscriptions[WS_A] = [marketplace_subscription(WS_A.lower(), "LLAMA-SUB")]
    world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])

    world.scan(workspaces=(WS_A,))

    assert world.findings() == []


def test_a_malformed_configured_workspace_id_is_reported_and_never_read(world: World):
    world.ml.add(WS_A)

    world.scan(workspaces=(WS_A, "/subscriptions/not-a-guid/resourceGroups/rg/providers/x"))

    [finding] = world.findings(rule="workspace-unreachable")
    assert finding.evidence["code"] == "InvalidResourceIdError"
    assert world.ml.reads == [WS_A, WS_A]
