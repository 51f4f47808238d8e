from datetime import timedelta

import pytest

from shared.hygiene.settings import HygieneSettings, HygieneSettingsError


def test_defaults_are_safe_reporting_only_and_dry_run():
    settings = HygieneSettings.from_env({})

    assert settings == HygieneSettings()
    assert (settings.findings_table, settings.alerts_queue, settings.webhook_url) == (
        "hygienefindings",
        "hygiene-alerts",
        None,
    )
    assert (settings.remediation, settings.dry_run, settings.max_remediations) == ({}, True, 10)
    assert settings.unhealthy_subscription_statuses == {"suspended", "unsubscribed"}
    assert settings.healthy_endpoint_states == {"online"}


def test_every_setting_is_read_from_its_name():
    settings = HygieneSettings.from_env(
        {
            "HYGIENE_WORKSPACES": " /subscriptions/a/ws1 , /subscriptions/b/ws2 ,",
            "HYGIENE_FINDINGS_TABLE": "findings2",
            "HYGIENE_ALERTS_QUEUE": "alerts-2",
            "HYGIENE_WEBHOOK_URL": "https://hooks.example.com/x",
            "HYGIENE_WEBHOOK_ATTEMPTS": "2",
            "HYGIENE_WEBHOOK_TIMEOUT_SECONDS": "3.5",
            "HYGIENE_MAX_WORKERS": "16",
            "HYGIENE_THROTTLE_RETRIES": "6",
            "HYGIENE_TRANSIENT_RETRIES": "0",
            "HYGIENE_RETRY_BACKOFF_SECONDS": "0.5",
            "HYGIENE_MAX_RETRY_AFTER_SECONDS": "120",
            "HYGIENE_UNHEALTHY_SUBSCRIPTION_STATUSES": "Suspended",
            "HYGIENE_MISSING_SUBSCRIPTION_UNHEALTHY": "false",
            "HYGIENE_HEALTHY_ENDPOINT_STATES": "Online,Reinstating",
            "HYGIENE_ENDPOINT_STATE_GRACE_MINUTES": "45",
            "HYGIENE_RUN_STUCK_MINUTES": "90",
            "HYGIENE_VERIFY_KEY_VALUES": "no",
            "HYGIENE_KEY_DRIFT_INTERVAL_HOURS": "6.5",
            "HYGIENE_DISABLED_RULES": "endpoint-unmanaged",
            "HYGIENE_REMEDIATION": "endpoint-unhealthy = Delete, secrets-orphaned=disable-secrets",
            "HYGIENE_DRY_RUN": "false",
            "HYGIENE_DELETE_GRACE_HOURS": "72",
            "HYGIENE_MAX_REMEDIATIONS": "0",
        }
    )

    assert settings == HygieneSettings(
        workspaces=("/subscriptions/a/ws1", "/subscriptions/b/ws2"),
        findings_table="findings2",
        alerts_queue="alerts-2",
        webhook_url="https://hooks.example.com/x",
        webhook_attempts=2,
        webhook_timeout_seconds=3.5,
        max_workers=16,
        throttle_retries=6,
        transient_retries=0,
        retry_backoff_seconds=0.5,
        max_retry_after_seconds=120.0,
        unhealthy_subscription_statuses=frozenset({"suspended"}),
        missing_subscription_unhealthy=False,
        healthy_endpoint_states=frozenset({"online", "reinstating"}),
        endpoint_state_grace=timedelta(minutes=45),
        run_stuck_after=timedelta(minutes=90),
        verify_key_values=False,
        key_drift_interval=timedelta(hours=6.5),
        disabled_rules=frozenset({"endpoint-unmanaged"}),
        remediation={"endpoint-unhealthy": "delete", "secrets-orphaned": "disable-secrets"},
        dry_run=False,
        delete_grace=timedelta(hours=72),
        max_remediations=0,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HYGIENE_DRY_RUN", "maybe", "HYGIENE_DRY_RUN='maybe' is not a boolean"),
        ("HYGIENE_MAX_WORKERS", "0", "HYGIENE_MAX_WORKERS=0 must be at least 1"),
        ("HYGIENE_MAX_WORKERS", "many", "is not a whole number"),
        ("HYGIENE_DELETE_GRACE_HOURS", "-1", "must not be negative"),
        ("HYGIENE_RUN_STUCK_MINUTES", "soon", "is not a number"),
        ("HYGIENE_REMEDIATION", "endpoint-unhealthy", "'endpoint-unhealthy' is not of the form rule=mode"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(name: str, value: str, message: str):
    with pytest.raises(HygieneSettingsError, match=message):
        HygieneSettings.from_env({name: value})
