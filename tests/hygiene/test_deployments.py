"""Hygiene speaks in deployments: each finding names the Deployment resource it is about, the run that deployed it,
its requests' tickets and the call that fixes it; and the scan writes what it saw back to the deployment (Healthy,
phase, open findings), leaving alone any deployment a run owns."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, Deployment, Phase, condition
from shared.hygiene.findings import finding_key
from shared.hygiene.rules import run_resource_id
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.ports import EndpointKeys
from shared.runs import RunStatus

from .conftest import World
from .fakes import (
    DIRECT_MODEL,
    T0,
    WS_A,
    WS_B,
    deployment,
    endpoint,
    marketplace_subscription,
    run,
)

LLAMA = f"{WS_A}/serverlessEndpoints/llama"
UNHEALTHY_KEY = finding_key("endpoint-unhealthy", LLAMA)


def deployed(world: World, name: str = "llama", *, subscribed: bool = True, **changes) -> Deployment:
    """A broker endpoint in WS_A on its own Marketplace subscription, its keys stored, and its Ready deployment."""
    item = endpoint(WS_A, name, subscription=f"{name}-sub")
    world.ml.add(WS_A, item)
    world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])
    if subscribed:
        world.ml.subscriptions[WS_A].append(marketplace_subscription(WS_A, f"{name}-sub"))
    made = deployment(WS_A, item, **changes)
    world.runs.add_deployment(made)
    return made


def lose_subscription(world: World, name: str = "llama") -> None:
    world.ml.subscriptions[WS_A] = [item for item in world.ml.subscriptions[WS_A] if item.name != f"{name}-sub"]


def resubscribe(world: World, name: str = "llama") -> None:
    world.ml.subscriptions[WS_A].append(marketplace_subscription(WS_A, f"{name}-sub"))


def only(world: World, rule: str):
    [record] = world.findings(rule=rule)
    return record


def conditions(item: Deployment) -> dict[str, tuple[str, str]]:
    return {entry.type.value: (entry.status, entry.reason) for entry in item.status.conditions}


# -- what a finding names ------------------------------------------------------------------------------------------


def test_an_unhealthy_endpoint_names_its_deployment_run_tickets_and_the_call_that_fixes_it(world: World):
    made = deployed(world, keys_run_id="run-keys", current_run_id="run-2", tickets=("INC-1", None, "INC-2", "INC-1"))
    lose_subscription(world)

    world.scan(workspaces=(WS_A,))

    record = only(world, "endpoint-unhealthy")
    assert (record.deployment_id, record.run_id, record.tickets) == (made.id, "run-keys", ("INC-1", "INC-2"))
    assert record.recommended_action == (
        f"Re-POST the same request (POST /api/deployments) or POST /api/deployments/{made.id}/repair to "
        f"re-subscribe; or DELETE /api/deployments/{made.id}"
    )
    public = record.to_public_dict()
    assert {"deploymentId", "runId", "tickets", "recommendedAction"} <= public.keys()


def test_the_deployment_is_found_by_endpoint_id_case_insensitively(world: World):
    item = endpoint(WS_A, "llama", subscription="llama-sub")
    world.ml.add(WS_A, item)
    made = deployment(WS_A, replace(item, id=item.id.upper()))
    world.runs.add_deployment(made)

    world.scan(workspaces=(WS_A,), disabled_rules=frozenset({"secrets-missing"}))

    assert only(world, "endpoint-unhealthy").deployment_id == made.id


def test_without_a_recorded_endpoint_the_brokerrunid_tag_leads_to_the_run_and_its_deployment(world: World):
    item = replace(
        endpoint(WS_A, "llama", subscription="llama-sub"),
        tags={MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": "run-7"},
    )
    world.ml.add(WS_A, item)
    made = deployment(WS_A, item, recorded_endpoint=False, keys_run_id=None, current_run_id="run-7")
    world.runs.add_deployment(made)
    world.runs.add(run("run-7", WS_A, deployment_id=made.id))

    world.scan(workspaces=(WS_A,), disabled_rules=frozenset({"secrets-missing"}))

    record = only(world, "endpoint-unhealthy")
    assert (record.deployment_id, record.run_id) == (made.id, "run-7")  # currentRunId when no keysRunId


def test_a_broker_endpoint_no_deployment_records_says_so_and_what_to_do(world: World):
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="llama-sub"))

    world.scan(workspaces=(WS_A,), disabled_rules=frozenset({"secrets-missing"}))

    record = only(world, "endpoint-unhealthy")
    assert (record.deployment_id, record.run_id, record.tickets) == (None, "run-1", ())
    assert record.recommended_action.startswith("No broker deployment records endpoint 'llama'")
    assert "POST /api/deployments" in record.recommended_action


def test_every_rule_recommends_an_action_naming_the_deployment_when_there_is_one(world: World):
    healthy = deployed(world)
    failed_item = endpoint(WS_A, "broken", model_id=DIRECT_MODEL, provisioning_state="Failed", endpoint_state=None)
    world.ml.add(WS_A, failed_item, endpoint(WS_A, "handmade", managed=False, model_id=DIRECT_MODEL))
    failed = deployment(WS_A, failed_item, phase=Phase.FAILED)
    gone_item = endpoint(WS_A, "gone", model_id=DIRECT_MODEL)
    world.secrets.put_for(WS_A, gone_item, EndpointKeys("old-primary", "old-secondary"))
    gone = deployment(WS_A, gone_item, deployment_id="ws-a--gone--test")
    # In another workspace: a run in progress makes the secret rules skip its workspace.
    world.ml.add(WS_B)
    stuck = deployment(WS_B, endpoint(WS_B, "stuck"), tickets=("CHG-9",))
    world.runs.add_deployment(failed, gone, stuck)
    world.runs.add(
        run("run-stuck", WS_B, status=RunStatus.PROVISIONING, created=T0 - timedelta(hours=3), deployment_id=stuck.id)
    )
    primary = next(name for name in world.secrets.secrets if "-llama-" in name and name.endswith("primary"))
    world.secrets.secrets.pop(primary)

    world.scan(workspaces=(WS_A,))

    actions = {record.rule: record for record in world.findings()}
    assert set(actions) == {"endpoint-failed", "secrets-missing", "secrets-orphaned", "endpoint-unmanaged", "run-stuck"}
    assert actions["endpoint-failed"].deployment_id == failed.id
    assert f"POST /api/deployments/{failed.id}/repair" in actions["endpoint-failed"].recommended_action
    assert f"DELETE /api/deployments/{failed.id}" in actions["endpoint-failed"].recommended_action
    assert actions["secrets-missing"].deployment_id == healthy.id
    assert actions["secrets-missing"].recommended_action.startswith(
        f"POST /api/deployments/{healthy.id}/repair to store the endpoint's current keys in Key Vault again"
    )
    assert actions["secrets-orphaned"].deployment_id == gone.id
    assert f"DELETE /api/deployments/{gone.id}" in actions["secrets-orphaned"].recommended_action
    assert actions["endpoint-unmanaged"].deployment_id is None
    assert "HYGIENE_DISABLED_RULES=endpoint-unmanaged" in actions["endpoint-unmanaged"].recommended_action
    stuck_record = actions["run-stuck"]
    assert stuck_record.resource_id == run_resource_id("run-stuck")
    assert (stuck_record.deployment_id, stuck_record.run_id, stuck_record.tickets) == (
        stuck.id,
        "run-stuck",
        ("CHG-9",),
    )
    assert stuck_record.recommended_action.startswith("GET /api/runs/run-stuck")


def test_orphaned_secrets_of_a_deleted_deployment_recommend_deleting_them(world: World):
    gone_item = endpoint(WS_A, "gone", model_id=DIRECT_MODEL)
    world.ml.add(WS_A)
    world.secrets.put_for(WS_A, gone_item, EndpointKeys("old-primary", "old-secondary"))
    world.runs.add_deployment(deployment(WS_A, gone_item, phase=Phase.DELETED))

    world.scan(workspaces=(WS_A,))

    record = only(world, "secrets-orphaned")
    assert record.recommended_action.startswith("Delete the leftover secrets")
    assert "HYGIENE_REMEDIATION=secrets-orphaned=delete" in record.recommended_action


def test_a_finding_about_a_deployment_a_run_is_working_on_says_to_follow_the_run(world: World):
    deployed(world, phase=Phase.PROVISIONING, current_run_id="run-9")
    lose_subscription(world)

    world.scan(workspaces=(WS_A,))

    assert only(world, "endpoint-unhealthy").recommended_action.startswith("Run run-9 is working on deployment")


def test_unreadable_deployments_are_reported_and_findings_keep_the_link_they_had(world: World):
    made = deployed(world)
    lose_subscription(world)
    world.scan(workspaces=(WS_A,))
    world.runs.deployments_failure = AzureCallError(503, "ServerBusy", "table busy")
    world.clock.advance(minutes=15)

    report = world.scan(workspaces=(WS_A,))

    record = only(world, "endpoint-unhealthy")
    assert (record.deployment_id, record.last_seen) == (made.id, T0 + timedelta(minutes=15))
    assert f"/api/deployments/{made.id}/repair" in record.recommended_action
    assert {"scope": "deployments", "status": 503, "code": "ServerBusy"}.items() <= report["errors"][0].items()
    assert report["deployments"] == {"read": None, "updated": 0, "ownedByRun": 0, "failed": 0, "updatedIds": []}
    assert "run-stuck" in report["rules"]["evaluated"]


# -- what the scan writes to the deployment ------------------------------------------------------------------------


def test_a_missing_subscription_degrades_the_deployment_and_its_resolution_makes_it_ready_again(world: World):
    made = deployed(world)
    lose_subscription(world)

    first = world.scan(workspaces=(WS_A,))
    degraded = world.runs.deployment(made.id)
    world.clock.advance(minutes=15)
    world.scan(workspaces=(WS_A,))
    unchanged = world.runs.deployment(made.id)
    resubscribe(world)
    world.clock.advance(minutes=15)
    world.scan(workspaces=(WS_A,))
    ready = world.runs.deployment(made.id)

    assert degraded.status.phase is Phase.DEGRADED
    assert conditions(degraded)["Healthy"] == ("False", "SubscriptionMissing")
    assert degraded.condition(ConditionType.HEALTHY).last_transition_time == T0
    assert degraded.status.open_findings == (UNHEALTHY_KEY,)
    assert first["deployments"] == {"read": 1, "updated": 1, "ownedByRun": 0, "failed": 0, "updatedIds": [made.id]}
    assert unchanged == degraded  # nothing new: nothing written
    assert ready.status.phase is Phase.READY
    assert conditions(ready)["Healthy"] == ("True", "Online")
    assert ready.condition(ConditionType.HEALTHY).last_transition_time == T0 + timedelta(minutes=30)
    assert ready.status.open_findings == ()
    # The other conditions are as the deploying run left them.
    assert {kind: status for kind, (status, _) in conditions(ready).items()} == dict.fromkeys(conditions(made), "True")


def test_the_healthy_reason_comes_from_the_evidence(world: World):
    suspended = deployed(world, "llama")
    quiet = deployed(world, "phi-state", deployment_id="ws-a--phi-state--test")
    world.ml.subscriptions[WS_A] = [
        marketplace_subscription(WS_A, "llama-sub", "Suspended"),
        marketplace_subscription(WS_A, "phi-state-sub"),
    ]
    world.ml.endpoints[WS_A][1] = replace(world.ml.endpoints[WS_A][1], endpoint_state="Suspending")

    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(minutes=30))
    pending = world.runs.deployment(quiet.id)
    world.clock.advance(minutes=31)
    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(minutes=30))

    assert conditions(world.runs.deployment(suspended.id))["Healthy"] == ("False", "SubscriptionSuspended")
    # Within the grace window the finding is pending: nothing is said about the deployment yet.
    assert pending.status.phase is Phase.READY
    assert conditions(world.runs.deployment(quiet.id))["Healthy"] == ("False", "EndpointSuspending")
    assert world.runs.deployment(quiet.id).status.phase is Phase.DEGRADED


def test_a_resolved_finding_leaves_the_deployment_degraded_while_another_condition_is_false(world: World):
    made = deployed(world)
    world.runs.update_deployment(
        made.id,
        lambda current: current.with_conditions(
            [condition(ConditionType.KEYS_STORED, "False", "SecretsDisabled", "disabled", at=T0)], at=T0
        ),
    )
    lose_subscription(world)
    world.scan(workspaces=(WS_A,))
    resubscribe(world)

    world.scan(workspaces=(WS_A,))

    after = world.runs.deployment(made.id)
    assert conditions(after)["Healthy"] == ("True", "Online")
    assert after.status.phase is Phase.DEGRADED


def test_a_deployment_a_run_owns_is_left_alone(world: World):
    provisioning = deployed(world, "llama", phase=Phase.PROVISIONING)
    deleting = deployed(world, "cohere", phase=Phase.DELETING, deployment_id="ws-a--cohere--test")
    world.ml.subscriptions[WS_A].clear()

    report = world.scan(workspaces=(WS_A,))

    assert world.runs.deployment(provisioning.id) == provisioning
    assert world.runs.deployment(deleting.id) == deleting
    assert report["deployments"]["ownedByRun"] == 2
    assert {record.deployment_id for record in world.findings(rule="endpoint-unhealthy")} == {
        provisioning.id,
        deleting.id,
    }


def test_a_run_that_claims_the_deployment_while_the_scan_runs_wins(world: World):
    made = deployed(world)
    lose_subscription(world)
    world.runs.before_next(
        "save_deployment",
        lambda: world.runs.update_deployment(
            made.id, lambda current: current.changed(at=T0, phase=Phase.PROVISIONING, current_run_id="run-repair")
        ),
    )

    report = world.scan(workspaces=(WS_A,))

    after = world.runs.deployment(made.id)
    assert (after.status.phase, after.status.current_run_id) == (Phase.PROVISIONING, "run-repair")
    assert conditions(after)["Healthy"] == ("True", "Online")
    assert report["deployments"]["ownedByRun"] == 1


def test_a_concurrent_change_to_the_deployment_is_kept_alongside_the_scans(world: World):
    made = deployed(world)
    lose_subscription(world)
    world.runs.before_next(
        "save_deployment",
        lambda: world.runs.update_deployment(
            made.id, lambda current: current.changed(at=T0, keys_run_id="run-rotated")
        ),
    )

    world.scan(workspaces=(WS_A,))

    after = world.runs.deployment(made.id)
    assert (after.status.phase, after.status.keys_run_id) == (Phase.DEGRADED, "run-rotated")
    assert world.runs.conflicts >= 1


def test_a_deployment_that_cannot_be_written_is_an_error_in_the_report_not_the_end_of_the_scan(world: World):
    broken = deployed(world, "llama")
    fine = deployed(world, "cohere", deployment_id="ws-a--cohere--test")
    world.ml.subscriptions[WS_A].clear()
    world.runs.update_failures[broken.id] = AzureCallError(503, "ServerBusy", "table busy")

    report = world.scan(workspaces=(WS_A,))

    assert world.runs.deployment(fine.id).status.phase is Phase.DEGRADED
    assert world.runs.deployment(broken.id) == broken
    assert report["deployments"]["failed"] == 1
    assert {"scope": f"deployment {broken.id}", "status": 503}.items() <= report["errors"][0].items()
    assert len(world.findings(rule="endpoint-unhealthy")) == 2
    assert world.store.latest_report() == report


def test_a_deployment_lists_every_open_finding_about_it(world: World):
    made = deployed(world)
    lose_subscription(world)
    primary = next(name for name in world.secrets.secrets if "-llama-" in name and name.endswith("primary"))
    world.secrets.secrets.pop(primary)

    world.scan(workspaces=(WS_A,))
    both = world.runs.deployment(made.id).status.open_findings
    world.secrets.put_for(WS_A, world.ml.endpoints[WS_A][0], world.ml.keys[LLAMA.lower()])
    world.scan(workspaces=(WS_A,))

    assert set(both) == {UNHEALTHY_KEY, finding_key("secrets-missing", LLAMA)}
    assert world.runs.deployment(made.id).status.open_findings == (UNHEALTHY_KEY,)


def test_an_endpoint_deleted_out_of_band_does_not_make_its_deployment_healthy(world: World):
    made = deployed(world)
    world.ml.endpoints[WS_A][0] = replace(world.ml.endpoints[WS_A][0], endpoint_state="Suspended")
    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(0))
    world.ml.endpoints[WS_A] = []

    world.scan(workspaces=(WS_A,), endpoint_state_grace=timedelta(0))

    after = world.runs.deployment(made.id)
    assert conditions(after)["Healthy"] == ("False", "EndpointMissing")
    assert after.status.phase is Phase.DEGRADED
    assert only(world, "endpoint-unhealthy").state == "resolved"
    assert after.status.open_findings == (finding_key("secrets-orphaned", LLAMA),)


def test_the_workspace_of_a_deployments_endpoint_is_scanned_even_when_nothing_else_names_it(world: World):
    # A cross-region deployment: requested for WS_A, its endpoint in the hub project WS_B.
    hub_endpoint = endpoint(WS_B, "llama", subscription="llama-sub")
    world.ml.add(WS_B, hub_endpoint)
    made = deployment(WS_A, hub_endpoint)
    world.runs.add_deployment(made)

    report = world.scan(disabled_rules=frozenset({"secrets-missing"}))

    assert report["workspaces"]["scanned"] == 1
    record = only(world, "endpoint-unhealthy")
    assert (record.workspace_id, record.deployment_id) == (WS_B, made.id)
    assert world.runs.deployment(made.id).status.phase is Phase.DEGRADED
