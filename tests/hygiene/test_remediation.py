"""Remediation: report by default, disable or delete only when configured, after a warned grace period, within a
cap, never in dry run, never on what the broker did not make, and every step audited on the finding."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, Deployment, Phase
from shared.hygiene.remediation import RemediationPolicy
from shared.hygiene.settings import HygieneSettingsError
from shared.ports import EndpointKeys
from shared.problems import Problem

from .conftest import World
from .fakes import DIRECT_MODEL, WS_A, deployment, endpoint, marketplace_subscription, settings

LLAMA = f"{WS_A}/serverlessEndpoints/llama"
DISABLE = {"endpoint-unhealthy": "disable-secrets"}
DELETE = {"endpoint-unhealthy": "delete"}


def unhealthy(world: World, *names: str) -> None:
    """Broker endpoints in WS_A whose Marketplace subscription was deleted, each with its two secrets stored."""
    for name in names or ("llama",):
        item = endpoint(WS_A, name, subscription=f"{name}-sub")
        world.ml.add(WS_A, item)
        world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])


def audit(world: World, rule: str = "endpoint-unhealthy") -> list[tuple[str, str, bool]]:
    [record] = [record for record in world.findings(rule=rule) if record.state == "open"]
    return [(entry.action, entry.outcome, entry.dry_run) for entry in record.actions]


def test_report_is_the_default_and_touches_nothing(world: World):
    unhealthy(world)

    report = world.scan(workspaces=(WS_A,))

    assert (world.ml.deleted, world.secrets.disabled, world.secrets.deleted) == ([], [], [])
    assert audit(world) == []
    assert report["remediation"]["actions"] == []


def test_disable_secrets_disables_both_secrets_once_and_audits_it(world: World):
    unhealthy(world)

    world.scan(workspaces=(WS_A,), remediation=DISABLE)
    world.scan(workspaces=(WS_A,), remediation=DISABLE)

    assert len(world.secrets.disabled) == 2
    assert all(not stored.enabled for stored, _ in world.secrets.secrets.values())
    assert audit(world) == [("disable-secrets", "done", False)]
    # Disabled secrets are still there: not "missing", and not compared (they cannot be read).
    assert world.findings(rule="secrets-missing") == []


def test_delete_waits_for_a_grace_period_that_starts_with_a_warning(world: World):
    unhealthy(world)
    grace = {"remediation": DELETE, "delete_grace": timedelta(hours=24)}

    world.scan(workspaces=(WS_A,), **grace)
    warned = world.take_alerts()
    world.clock.advance(hours=23)
    world.scan(workspaces=(WS_A,), **grace)
    before_grace = list(world.ml.deleted)
    world.clock.advance(hours=2)
    world.scan(workspaces=(WS_A,), **grace)

    assert warned == [("opened", "endpoint-unhealthy", LLAMA), ("deletion-scheduled", "endpoint-unhealthy", LLAMA)]
    assert before_grace == []
    assert world.ml.deleted == [(WS_A, "llama")]
    assert len(world.secrets.deleted) == 2
    assert audit(world) == [("schedule-deletion", "done", False), ("delete", "done", False)]
    world.scan(workspaces=(WS_A,), **grace)
    assert world.take_alerts() == [("resolved", "endpoint-unhealthy", LLAMA)]
    assert world.findings(rule="secrets-orphaned") == []


def test_the_warning_says_when_deletion_will_happen(world: World):
    unhealthy(world)

    world.scan(workspaces=(WS_A,), remediation=DELETE, delete_grace=timedelta(hours=6))

    warning = world.queue.messages[-1]
    assert warning["type"] == "com.contoso.broker.hygiene.finding.deletion-scheduled"
    assert warning["data"]["deleteAfter"] == (world.clock.now + timedelta(hours=6)).isoformat()


def test_a_finding_that_resolves_within_the_grace_period_is_never_deleted(world: World):
    unhealthy(world)
    world.scan(workspaces=(WS_A,), remediation=DELETE)
    world.ml.subscriptions[WS_A] = [marketplace_subscription(WS_A, "llama-sub")]
    world.scan(workspaces=(WS_A,), remediation=DELETE)
    world.ml.subscriptions[WS_A] = []
    world.clock.advance(hours=30)

    world.scan(workspaces=(WS_A,), remediation=DELETE)

    assert world.ml.deleted == []
    # The recurrence started its own grace period with a new warning.
    assert [kind for kind, _, _ in world.take_alerts()].count("deletion-scheduled") == 2


def test_the_grace_period_begins_only_once_the_warning_is_delivered(world: World):
    unhealthy(world)
    world.queue.failing = True
    world.scan(workspaces=(WS_A,), remediation=DELETE)
    world.clock.advance(hours=30)
    world.scan(workspaces=(WS_A,), remediation=DELETE)
    assert world.ml.deleted == []

    world.queue.failing = False
    world.scan(workspaces=(WS_A,), remediation=DELETE)  # delivers the warning now
    world.clock.advance(hours=25)
    world.scan(workspaces=(WS_A,), remediation=DELETE)

    assert world.ml.deleted == [(WS_A, "llama")]


def test_dry_run_plans_and_audits_but_touches_nothing_and_warns_nobody(world: World):
    unhealthy(world)

    report = world.scan(workspaces=(WS_A,), remediation=DELETE, dry_run=True)
    world.clock.advance(hours=48)
    world.scan(workspaces=(WS_A,), remediation=DELETE, dry_run=True)

    assert (world.ml.deleted, world.secrets.deleted) == ([], [])
    assert [kind for kind, _, _ in world.take_alerts()] == ["opened"]
    assert audit(world) == [("schedule-deletion", "planned", True)]
    assert report["dryRun"] is True
    assert [(action["action"], action["outcome"]) for action in report["remediation"]["actions"]] == [
        ("schedule-deletion", "planned")
    ]


def test_more_destructive_actions_than_the_cap_means_none_are_taken(world: World):
    unhealthy(world, "llama", "mistral", "cohere")

    report = world.scan(workspaces=(WS_A,), remediation=DISABLE, max_remediations=2)

    assert world.secrets.disabled == []
    assert report["remediation"]["skipped"] == 3
    assert all(record.actions[-1].outcome == "skipped" for record in world.findings(rule="endpoint-unhealthy"))
    world.scan(workspaces=(WS_A,), remediation=DISABLE, max_remediations=3)
    assert len(world.secrets.disabled) == 6


def test_endpoints_the_broker_did_not_make_are_never_touched(world: World):
    world.ml.add(WS_A, endpoint(WS_A, "handmade", managed=False, subscription="gone-sub"))
    world.scan(workspaces=(WS_A,), remediation=DELETE)
    world.clock.advance(days=3)

    world.scan(workspaces=(WS_A,), remediation=DELETE)

    assert world.ml.deleted == []
    assert [kind for kind, _, _ in world.take_alerts()] == ["opened", "opened"]  # unhealthy + unmanaged, no warning


def test_a_failed_action_is_audited_and_retried_by_the_next_scan(world: World):
    unhealthy(world)
    original = world.secrets.set_enabled

    def refusing(name: str, enabled: bool) -> None:
        raise AzureCallError(403, "Forbidden", "The user does not have secrets set permission")

    world.secrets.set_enabled = refusing
    report = world.scan(workspaces=(WS_A,), remediation=DISABLE)
    world.secrets.set_enabled = original
    world.scan(workspaces=(WS_A,), remediation=DISABLE)

    assert report["remediation"]["failed"] == 1
    assert audit(world) == [("disable-secrets", "failed", False), ("disable-secrets", "done", False)]
    assert len(world.secrets.disabled) == 2


def test_orphaned_secrets_are_deleted_after_the_grace_period(world: World):
    phi = endpoint(WS_A, "phi", model_id=DIRECT_MODEL)
    world.ml.add(WS_A, phi)
    world.secrets.put_for(WS_A, phi, world.ml.keys[phi.id.lower()])
    orphaned = world.secrets.put_for(WS_A, endpoint(WS_A, "gone"), EndpointKeys("old-primary-1", "old-secondary-1"))
    orphans = {"secrets-orphaned": "delete"}

    world.scan(remediation=orphans)
    world.clock.advance(hours=25)
    world.scan(remediation=orphans)

    assert sorted(world.secrets.deleted) == sorted(orphaned)
    assert world.ml.deleted == []


@pytest.mark.parametrize(
    ("remediation", "message"),
    [
        ({"no-such-rule": "report"}, "no rule 'no-such-rule'"),
        ({"endpoint-unmanaged": "delete"}, "endpoint-unmanaged allows report, not 'delete'"),
        ({"run-stuck": "disable-secrets"}, "run-stuck allows report"),
        ({"endpoint-failed": "purge"}, "not 'purge'"),
    ],
)
def test_remediation_settings_are_validated(remediation: dict[str, str], message: str):
    with pytest.raises(HygieneSettingsError, match=message):
        RemediationPolicy.from_settings(settings(remediation=remediation))


def test_an_unknown_disabled_rule_is_refused(world: World):
    with pytest.raises(HygieneSettingsError, match="HYGIENE_DISABLED_RULES: no rule endpoint-unhappy"):
        world.scanner(disabled_rules=frozenset({"endpoint-unhappy"}))


# -- resubscribe: repair the deployment, which re-subscribes its Marketplace subscription ---------------------------

RESUBSCRIBE = {"endpoint-unhealthy": "resubscribe"}


def unsubscribed_deployment(world: World, name: str = "llama", **changes) -> Deployment:
    """A broker endpoint in WS_A whose Marketplace subscription was deleted, with its (Ready) deployment."""
    unhealthy(world, name)
    made = deployment(WS_A, world.ml.endpoints[WS_A][-1], deployment_id=f"ws-a--{name}--test", **changes)
    world.runs.add_deployment(made)
    return made


def test_resubscribe_is_off_by_default(world: World):
    unsubscribed_deployment(world)

    world.scan(workspaces=(WS_A,))

    assert world.repairs == []
    assert audit(world) == []


def test_resubscribe_repairs_the_deployment_once_per_occurrence_and_audits_the_run(world: World):
    made = unsubscribed_deployment(world)

    report = world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE)
    world.clock.advance(minutes=15)
    world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE)

    assert world.repairs == [made.id]
    [entry] = only_open(world).actions
    assert (entry.action, entry.outcome, entry.dry_run) == ("resubscribe", "done", False)
    assert entry.detail == (
        f"repair deployment {made.id} (POST /api/deployments/{made.id}/repair), re-subscribing its Marketplace "
        "subscription: repair run repair-1"
    )
    assert report["remediation"]["done"] == 1
    # The scan marked it Degraded first; the repair run then claimed it, and the next scan left it to the run.
    after = world.runs.deployment(made.id)
    assert (after.status.phase, after.status.current_run_id) == (Phase.PROVISIONING, "repair-1")
    assert after.condition(ConditionType.HEALTHY).reason == "SubscriptionMissing"


def test_resubscribe_in_dry_run_plans_and_audits_but_repairs_nothing(world: World):
    made = unsubscribed_deployment(world)

    report = world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE, dry_run=True)

    assert world.repairs == []
    assert audit(world) == [("resubscribe", "planned", True)]
    assert report["remediation"]["planned"] == 1
    assert world.runs.deployment(made.id).status.phase is Phase.DEGRADED


def test_more_resubscriptions_than_the_cap_means_none(world: World):
    for name in ("llama", "mistral", "cohere"):
        unsubscribed_deployment(world, name)

    report = world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE, max_remediations=2)

    assert world.repairs == []
    assert report["remediation"]["skipped"] == 3
    assert "3 actions planned exceed HYGIENE_MAX_REMEDIATIONS=2" in only_open(world, "llama").actions[-1].detail


def test_resubscribe_only_for_broker_endpoints_with_a_deployment_no_run_owns(world: World):
    unhealthy(world, "orphan")  # the broker made it, but no deployment records it
    world.ml.add(WS_A, endpoint(WS_A, "handmade", managed=False, subscription="handmade-sub"))
    unsubscribed_deployment(world, "busy", phase=Phase.PROVISIONING)
    unsubscribed_deployment(world, "gone", phase=Phase.DELETING)

    report = world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE)

    assert world.repairs == []
    assert report["remediation"]["actions"] == []


def test_resubscribe_acts_only_when_the_evidence_names_the_subscription(world: World):
    item = endpoint(WS_A, "phi", model_id=DIRECT_MODEL, endpoint_state="Suspended")
    world.ml.add(WS_A, item)
    world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])
    world.runs.add_deployment(deployment(WS_A, item))

    world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE, endpoint_state_grace=timedelta(0))

    assert [record.state for record in world.findings(rule="endpoint-unhealthy")] == ["open"]
    assert world.repairs == []


def test_a_refused_repair_is_audited_as_failed_and_tried_again_next_scan(world: World):
    made = unsubscribed_deployment(world)
    world.repair_problem = Problem.of("requester-forbidden", "The broker may not deploy into ws-a.")

    report = world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE)
    world.repair_problem = None
    world.scan(workspaces=(WS_A,), remediation=RESUBSCRIBE)

    assert report["remediation"]["failed"] == 1
    assert audit(world) == [("resubscribe", "failed", False), ("resubscribe", "done", False)]
    assert "requester-forbidden: The broker may not deploy into ws-a." in only_open(world).actions[0].detail
    assert world.repairs == [made.id, made.id]


def test_resubscribe_is_allowed_for_endpoint_unhealthy_only():
    assert RemediationPolicy.from_settings(settings(remediation=RESUBSCRIBE)).mode_for("endpoint-unhealthy") == (
        "resubscribe"
    )
    for rule in ("endpoint-failed", "secrets-orphaned", "secrets-missing"):
        with pytest.raises(HygieneSettingsError, match=f"{rule} allows .*not 'resubscribe'"):
            RemediationPolicy.from_settings(settings(remediation={rule: "resubscribe"}))


def only_open(world: World, name: str = "llama"):
    [record] = [
        record
        for record in world.findings(rule="endpoint-unhealthy")
        if record.state == "open" and record.endpoint_name == name
    ]
    return record
