"""Findings across scans: alert once when opened, once when resolved, never because a source was unreadable."""

from __future__ import annotations

from datetime import timedelta

from shared.azure_errors import AzureCallError, RecordExistsError
from shared.hygiene.findings import finding_key
from shared.runs import RunStatus

from .conftest import World
from .fakes import DIRECT_MODEL, T0, WS_A, WS_B, endpoint, marketplace_subscription, run

LLAMA = f"{WS_A}/serverlessEndpoints/llama"


def broken_subscription(world: World) -> None:
    """WS_A: a broker endpoint on a Marketplace subscription that was deleted, plus a healthy sold-directly one."""
    for item in (endpoint(WS_A, "llama", subscription="llama-sub"), endpoint(WS_A, "phi", model_id=DIRECT_MODEL)):
        world.ml.add(WS_A, item)
        world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])


def resubscribe(world: World) -> None:
    world.ml.subscriptions[WS_A] = [marketplace_subscription(WS_A, "llama-sub")]


def test_a_finding_alerts_once_when_opened_and_once_when_resolved(world: World):
    broken_subscription(world)

    first = world.scan(workspaces=(WS_A,))
    opened = world.take_alerts()
    world.clock.advance(minutes=15)
    second = world.scan(workspaces=(WS_A,))
    repeated = world.take_alerts()
    resubscribe(world)
    world.clock.advance(minutes=15)
    third = world.scan(workspaces=(WS_A,))
    resolved = world.take_alerts()
    world.clock.advance(minutes=15)
    world.scan(workspaces=(WS_A,))

    assert opened == [("opened", "endpoint-unhealthy", LLAMA)]
    assert repeated == []
    assert resolved == [("resolved", "endpoint-unhealthy", LLAMA)]
    assert world.take_alerts() == []
    assert (first["findings"]["opened"], second["findings"]["opened"], third["findings"]["resolved"]) == (1, 0, 1)
    [record] = world.findings(rule="endpoint-unhealthy")
    assert (record.first_seen, record.last_seen, record.resolved_at) == (
        T0,
        T0 + timedelta(minutes=15),
        T0 + timedelta(minutes=30),
    )


def test_a_finding_that_comes_back_is_a_new_occurrence_with_its_own_alerts(world: World):
    broken_subscription(world)
    world.scan(workspaces=(WS_A,))
    resubscribe(world)
    world.scan(workspaces=(WS_A,))
    world.ml.subscriptions[WS_A].clear()
    world.clock.advance(hours=1)

    world.scan(workspaces=(WS_A,))

    ids = [message["id"] for message in world.queue.messages]
    assert world.take_alerts() == [
        ("opened", "endpoint-unhealthy", LLAMA),
        ("resolved", "endpoint-unhealthy", LLAMA),
        ("opened", "endpoint-unhealthy", LLAMA),
    ]
    assert len(set(ids)) == 3
    [record] = world.findings(rule="endpoint-unhealthy")
    assert (record.state, record.occurrence, record.first_seen, record.resolved_at) == (
        "open",
        2,
        T0 + timedelta(hours=1),
        None,
    )


def test_an_unreachable_workspace_does_not_resolve_its_findings(world: World):
    broken_subscription(world)
    world.scan(workspaces=(WS_A,))
    world.take_alerts()
    resubscribe(world)  # fixed, but the scan cannot see it...
    world.ml.failures[WS_A] = AzureCallError(503, "ServiceUnavailable", "try later")

    world.scan(workspaces=(WS_A,))

    assert world.take_alerts() == [("opened", "workspace-unreachable", WS_A)]
    assert [record.state for record in world.findings(rule="endpoint-unhealthy")] == ["open"]
    del world.ml.failures[WS_A]
    world.scan(workspaces=(WS_A,))
    assert sorted(world.take_alerts()) == [
        ("resolved", "endpoint-unhealthy", LLAMA),
        ("resolved", "workspace-unreachable", WS_A),
    ]


def test_an_unreadable_key_vault_neither_reports_nor_resolves_secret_findings(world: World):
    broken_subscription(world)
    world.secrets.secrets.clear()
    world.scan(workspaces=(WS_A,))
    world.take_alerts()
    world.secrets.failure = AzureCallError(403, "Forbidden", "Caller is not authorized to list secrets")

    report = world.scan(workspaces=(WS_A,))

    assert world.take_alerts() == []
    assert {record.state for record in world.findings(rule="secrets-missing")} == {"open"}
    assert "secrets-missing" in report["rules"]["skipped"]
    assert {"scope": "secrets", "status": 403, "code": "Forbidden"}.items() <= report["errors"][0].items()


def test_an_unreadable_run_store_skips_run_rules_and_keeps_their_findings(world: World):
    world.ml.add(WS_A)
    world.runs.add(run("old", WS_A, status=RunStatus.PROVISIONING, created=T0 - timedelta(days=1)))
    world.scan()
    world.runs.failure = AzureCallError(None, "ConnectionFailed", "table storage unreachable")

    report = world.scan(workspaces=(WS_A,))

    assert [record.state for record in world.findings(rule="run-stuck")] == ["open"]
    assert report["rules"]["skipped"] == ["run-stuck", "secrets-missing", "secrets-orphaned"]


def test_an_alert_that_cannot_be_delivered_is_sent_by_the_next_scan_and_only_once(world: World):
    broken_subscription(world)
    world.queue.failing = True

    first = world.scan(workspaces=(WS_A,))
    world.queue.failing = False
    second = world.scan(workspaces=(WS_A,))
    world.scan(workspaces=(WS_A,))

    assert first["alerts"] == {"delivered": 0, "failed": 1}
    assert second["alerts"] == {"delivered": 1, "failed": 0}
    assert world.take_alerts() == [("opened", "endpoint-unhealthy", LLAMA)]


def test_a_finding_created_by_a_concurrent_scan_is_announced_by_that_scan_only(world: World):
    broken_subscription(world)
    key = finding_key("endpoint-unhealthy", LLAMA)
    original_create = world.table.create

    def racing_create(partition, row_key, document, index):
        if row_key == key:
            original_create(partition, row_key, {**document, "outbox": []}, {**index, "AlertsPending": "false"})
            raise RecordExistsError(row_key)
        return original_create(partition, row_key, document, index)

    world.table.create = racing_create

    report = world.scan(workspaces=(WS_A,))

    assert report["findings"]["opened"] == 0
    assert world.take_alerts() == []


def test_a_disabled_rule_leaves_its_findings_alone(world: World):
    broken_subscription(world)
    world.scan(workspaces=(WS_A,))
    resubscribe(world)

    world.scan(workspaces=(WS_A,), disabled_rules=frozenset({"endpoint-unhealthy"}))

    assert [record.state for record in world.findings(rule="endpoint-unhealthy")] == ["open"]


def test_the_latest_report_is_stored(world: World):
    broken_subscription(world)
    world.ml.add(WS_B, endpoint(WS_B, "handmade", managed=False))

    report = world.scan(workspaces=(WS_A, WS_B))

    assert world.store.latest_report() == report
    assert report["startedAt"] == T0.isoformat()
    assert report["findings"]["open"] == {"endpoint-unhealthy": 1, "endpoint-unmanaged": 1}
    assert report["findings"]["openBySeverity"] == {"high": 1, "info": 1}
    assert report["resources"] == {"endpoints": 3, "marketplaceSubscriptions": 0, "secrets": 4, "activeRuns": 0}
