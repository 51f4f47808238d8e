"""Alert payloads (CloudEvents, Azure Monitor common alert schema) and webhook delivery with retries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from devstack.ports import free_port
from shared.hygiene.alerts import AlertDeliveryError, QueueAlertChannel, WebhookAlertChannel, cloud_event, common_alert
from shared.hygiene.findings import AlertKind, Finding, Severity, observe, resolve
from shared.hygiene.scan import HygieneScanner

from .conftest import World
from .fakes import T0, WS_A, endpoint, settings
from .webhook_server import running_webhook

LLAMA = f"{WS_A}/serverlessEndpoints/llama"


def open_record():
    finding = Finding(
        rule="endpoint-unhealthy",
        severity=Severity.HIGH,
        resource_id=LLAMA,
        workspace_id=WS_A,
        summary="Endpoint 'llama' is unhealthy: subscription llama-sub not found.",
        evidence={"endpointState": "Suspended"},
    )
    return observe(None, finding, now=T0, channels=["queue"]).record


def webhook_channel(url: str, sleeps: list[float], attempts: int = 3) -> WebhookAlertChannel:
    return WebhookAlertChannel(
        url, attempts=attempts, timeout_seconds=5, backoff_seconds=0.25, max_wait_seconds=10, sleep=sleeps.append
    )


def test_a_cloud_event_carries_the_finding_with_a_stable_id():
    record = open_record()

    event = cloud_event(record, AlertKind.OPENED, time=T0)
    again = cloud_event(record, AlertKind.OPENED, time=T0 + timedelta(minutes=5))

    assert event["id"] == again["id"] == f"{record.key}/1/opened"
    assert (event["specversion"], event["type"], event["subject"]) == (
        "1.0",
        "com.contoso.broker.hygiene.finding.opened",
        LLAMA,
    )
    assert event["data"]["rule"] == "endpoint-unhealthy"
    assert event["data"]["evidence"] == {"endpointState": "Suspended"}
    json.dumps(event)


def test_the_common_alert_schema_fires_and_resolves():
    record = open_record()
    resolved = resolve(record, now=T0 + timedelta(hours=1), channels=["queue"]).record

    fired = common_alert(record, AlertKind.OPENED, time=T0)["data"]["essentials"]
    cleared = common_alert(resolved, AlertKind.RESOLVED, time=T0 + timedelta(hours=1))["data"]["essentials"]

    assert (fired["severity"], fired["monitorCondition"], fired["resolvedDateTime"]) == ("Sev1", "Fired", None)
    assert fired["alertTargetIDs"] == [LLAMA.lower()]
    assert fired["configurationItems"] == ["llama"]
    assert fired["alertId"] == cleared["alertId"]
    assert (cleared["monitorCondition"], cleared["resolvedDateTime"]) == (
        "Resolved",
        (T0 + timedelta(hours=1)).isoformat(),
    )


def test_the_webhook_is_retried_on_503_honouring_retry_after():
    sleeps: list[float] = []
    with running_webhook() as webhook:
        webhook.script = [(503, "2"), (500, None)]
        webhook_channel(webhook.url, sleeps).deliver(open_record(), AlertKind.OPENED, time=T0, extra={})

    assert webhook.attempts == 3
    assert sleeps == [2.0, 0.5]
    [payload] = webhook.received
    assert payload["schemaId"] == "azureMonitorCommonAlertSchema"


def test_a_client_error_from_the_webhook_is_not_retried():
    sleeps: list[float] = []
    with running_webhook() as webhook:
        webhook.script = [(400, None)]
        with pytest.raises(AlertDeliveryError, match="HTTP 400 after 1 attempt"):
            webhook_channel(webhook.url, sleeps).deliver(open_record(), AlertKind.OPENED, time=T0, extra={})

    assert (webhook.attempts, sleeps) == (1, [])


def test_an_unreachable_webhook_fails_after_its_attempts_without_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/hook?sig=signature-value"
    sleeps: list[float] = []

    with pytest.raises(AlertDeliveryError) as raised:
        webhook_channel(url, sleeps, attempts=2).deliver(open_record(), AlertKind.OPENED, time=T0, extra={})

    assert "signature-value" not in str(raised.value)
    assert sleeps == [0.25]


def test_a_failing_webhook_is_retried_next_scan_without_repeating_the_queue_alert(world: World):
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="gone-sub", managed=False))
    sleeps: list[float] = []
    with running_webhook() as webhook:
        scanner = HygieneScanner(
            settings=settings(workspaces=(WS_A,), disabled_rules=frozenset({"endpoint-unmanaged"})),
            machine_learning=world.ml,
            secret_store=world.secrets,
            runs=world.runs,
            store=world.store,
            channels=[QueueAlertChannel(world.queue), webhook_channel(webhook.url, sleeps, attempts=1)],
            clock=world.clock,
        )
        webhook.script = [(503, None)]
        first = scanner.scan()
        second = scanner.scan()
        third = scanner.scan()

    assert (first["alerts"], second["alerts"], third["alerts"]) == (
        {"delivered": 1, "failed": 1},
        {"delivered": 1, "failed": 0},
        {"delivered": 0, "failed": 0},
    )
    assert world.take_alerts() == [("opened", "endpoint-unhealthy", LLAMA)]
    [payload] = webhook.received
    assert payload["data"]["essentials"]["alertRule"] == "endpoint-unhealthy"


def linked_record():
    finding = Finding(
        rule="endpoint-unhealthy",
        severity=Severity.HIGH,
        resource_id=LLAMA,
        workspace_id=WS_A,
        summary="Endpoint 'llama' is unhealthy: subscription llama-sub not found.",
        evidence={},
        deployment_id="ws-a--llama--0123456789",
        run_id="run-1",
        tickets=("INC-1", "INC-2"),
        recommended_action="POST /api/deployments/ws-a--llama--0123456789/repair",
    )
    return observe(None, finding, now=T0, channels=["queue"]).record


def test_alerts_name_the_deployment_its_run_tickets_and_the_recommended_action():
    record = linked_record()

    event = cloud_event(record, AlertKind.OPENED, time=T0)
    alert = common_alert(record, AlertKind.OPENED, time=T0)["data"]

    expected = {
        "deploymentId": "ws-a--llama--0123456789",
        "runId": "run-1",
        "tickets": ["INC-1", "INC-2"],
        "recommendedAction": "POST /api/deployments/ws-a--llama--0123456789/repair",
    }
    assert expected.items() <= event["data"].items()
    assert event["deploymentid"] == "ws-a--llama--0123456789"
    assert expected.items() <= alert["alertContext"].items()
    assert alert["customProperties"] == {
        "eventType": "com.contoso.broker.hygiene.finding.opened",
        **expected,
        "tickets": "INC-1, INC-2",
    }


def test_an_alert_about_nothing_the_broker_deployed_has_no_deployment():
    event = cloud_event(open_record(), AlertKind.OPENED, time=T0)

    assert "deploymentid" not in event
    assert (event["data"]["deploymentId"], event["data"]["tickets"]) == (None, [])


def test_the_webhook_posts_the_deployment_fields():
    sleeps: list[float] = []
    with running_webhook() as webhook:
        webhook_channel(webhook.url, sleeps).deliver(linked_record(), AlertKind.OPENED, time=T0, extra={})

    [payload] = webhook.received
    assert payload["data"]["alertContext"]["deploymentId"] == "ws-a--llama--0123456789"
    assert payload["data"]["customProperties"]["recommendedAction"].endswith("/repair")
