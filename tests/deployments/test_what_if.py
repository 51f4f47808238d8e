"""What-if answers what a deployment request would do (verdict, outcome, every check, the plan of Azure writes) from
reads alone: after each answer the run store, the queues, Key Vault, the connections and the ARM fake hold exactly
what they held before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from shared.access import AppRole, BrokerRoles, Caller
from shared.adapters.run_store import _run_home, _run_key
from shared.approvals import ApprovalPolicy
from shared.azure_errors import AzureCallError
from shared.deployment import Phase, deployment_id
from shared.ownership import ownership_tags
from shared.plan import plan_for
from shared.requests import DeploymentRequest
from shared.runs import RunError, RunStatus
from tests.lifecycle.world import HUB_ID
from tests.lifecycle.world import build as build_cross_region

from .scenario import (
    AI_DEVELOPER_BLOCK,
    CATALOG,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    REQUESTER,
    RESOURCE_GROUP_SCOPE,
    WORKSPACE_ID,
    World,
    build_world,
    policy,
    request,
)

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
STRANGER = "5742a9e1-0000-4000-8000-000000000009"
AUDITOR_ROLE = "Broker.Auditor"
LOCAL_CHECKS = ("model-approved", "model-known", "workspace-allowed", "endpoint-name-valid")
ALL_CHECKS = (
    *LOCAL_CHECKS,
    "broker-permissions",
    "requester-permission",
    "region-supported",
    "one-deployment-per-model",
)
# What the ports write with, by fake: nothing of it may be called while answering what-if.
ARM_WRITES = {
    "begin_create_endpoint",
    "begin_delete_endpoint",
    "begin_create_subscription",
    "begin_delete_subscription",
    "list_keys",
    "regenerate_key",
}
VAULT_WRITES = {"set_secret", "set_enabled", "delete_secret"}


@dataclass(frozen=True)
class Snapshot:
    rows: str
    messages: tuple[int, int, int, int]
    connections: str


def _snapshot(world: World) -> Snapshot:
    documents = world.runs.table.query(None, {}, page_size=1000).documents
    return Snapshot(
        rows=json.dumps(documents, sort_keys=True),
        messages=(len(world.work.sent), len(world.events.sent), len(world.poison.sent), len(world.poison.raw)),
        connections=repr(sorted(world.connections.connections.items())),
    )


@contextmanager
def nothing_written(world: World) -> Iterator[None]:
    """Asserts that the block wrote nothing: no row, no message, no ARM, Key Vault or connection write."""
    before = _snapshot(world)
    world.ml.calls.clear()
    world.secrets.calls.clear()
    yield
    assert _snapshot(world) == before
    assert not ARM_WRITES & set(world.ml.call_names)
    assert not VAULT_WRITES & set(world.secrets.call_names)


def what_if(world: World, model_id: str = DIRECT_MODEL, *, caller: Caller | None = None, **fields: Any):
    with nothing_written(world):
        return world.service.what_if(request(model_id, **fields), caller=caller or Caller.of(REQUESTER))


def outcomes(answer) -> dict[str, str]:
    return {check.name: check.outcome for check in answer.checks}


def plan_actions(answer) -> list[tuple[str, str]]:
    return [(step.action, step.write) for step in answer.plan]


def _may_deploy(world: World, caller: str) -> None:
    world.authorization.grant(caller, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])


# -- new deployments -----------------------------------------------------------------------------------------------


def test_a_new_deployment_of_a_model_sold_directly_is_created_endpoint_and_secrets(world):
    answer = what_if(world, tags={"costCenter": "cc-42"})

    assert (answer.verdict, answer.outcome) == ("allowed", "create")
    assert outcomes(answer) == dict.fromkeys(ALL_CHECKS, "passed")
    assert plan_actions(answer) == [("createEndpoint", "always"), ("storeSecret", "always"), ("storeSecret", "always")]
    endpoint, primary, secondary = answer.plan
    names = plan_for(request(DIRECT_MODEL), CATALOG)
    assert endpoint.target == names.endpoint_id
    assert (endpoint.location, endpoint.content_safety) == ("eastus2", "Enabled")
    assert endpoint.tags == {"costCenter": "cc-42", **ownership_tags()}
    assert (primary.target, secondary.target) == (names.secret_names.primary, names.secret_names.secondary)
    assert "listKeys" in primary.description
    assert answer.deployment_id == deployment_id(names.workspace, names.model)
    assert answer.approval is None


def test_a_marketplace_model_is_planned_with_its_subscription_and_offer(world):
    answer = what_if(world, MARKETPLACE_MODEL)

    assert plan_actions(answer)[:2] == [("subscribe", "always"), ("createEndpoint", "always")]
    subscribe = answer.plan[0]
    names = plan_for(request(MARKETPLACE_MODEL), CATALOG)
    assert subscribe.target == names.workspace.marketplace_subscription_id(names.subscription_name)
    assert "accepts the offer's terms" in subscribe.description
    assert "billed through Marketplace" in subscribe.description
    assert subscribe.offer.model_id == MARKETPLACE_MODEL
    assert subscribe.offer.publisher == "cohere"
    assert "marketplacePlan" in subscribe.offer.source


def test_a_subscribed_subscription_is_reused_without_a_write(world):
    names = plan_for(request(MARKETPLACE_MODEL), CATALOG)
    world.ml.add_subscription(WORKSPACE_ID, names.subscription_name, MARKETPLACE_MODEL, status="Subscribed")

    answer = what_if(world, MARKETPLACE_MODEL)

    assert plan_actions(answer)[0] == ("reuseSubscription", "none")
    assert "Subscribed" in answer.plan[0].description


def test_a_subscription_azure_is_creating_is_waited_for_not_bought_again(world):
    names = plan_for(request(MARKETPLACE_MODEL), CATALOG)
    world.ml.begin_create_subscription(WORKSPACE_ID, names.subscription_name, model_id=MARKETPLACE_MODEL)

    answer = what_if(world, MARKETPLACE_MODEL)

    assert plan_actions(answer)[0] == ("reuseSubscription", "none")
    assert "Azure is creating" in answer.plan[0].description


def test_a_broker_endpoint_that_exists_is_kept_and_only_its_keys_stored(world):
    names = plan_for(request(DIRECT_MODEL), CATALOG)
    world.ml.add_endpoint(WORKSPACE_ID, names.endpoint_name, DIRECT_MODEL, tags=ownership_tags())

    answer = what_if(world)

    assert answer.outcome == "create"
    assert plan_actions(answer) == [("keepEndpoint", "none"), ("storeSecret", "always"), ("storeSecret", "always")]
    assert answer.plan[0].target == names.endpoint_id


def test_a_cross_region_request_is_planned_in_the_hub_with_a_connection_to_the_project():
    world = build_cross_region(location="westeurope", hub=True)

    answer = what_if(world, allow_cross_region=True)

    assert answer.outcome == "create"
    assert "hub-eus2" in next(check.detail for check in answer.checks if check.name == "region-supported")
    assert plan_actions(answer) == [
        ("createEndpoint", "always"),
        ("storeSecret", "always"),
        ("storeSecret", "always"),
        ("createConnection", "always"),
    ]
    endpoint, connection = answer.plan[0], answer.plan[-1]
    assert endpoint.target.startswith(HUB_ID + "/serverlessEndpoints/")
    assert endpoint.location == "eastus2"
    assert connection.target.startswith(WORKSPACE_ID + "/connections/")


def test_a_deploy_run_the_approval_policy_names_needs_approval():
    world = build_world(
        approvals=ApprovalPolicy(enabled=True),
        roles=BrokerRoles(approver=AppRole("Broker.Approver", frozenset({"9d1c0000-0000-4000-8000-0000000000a1"}))),
    )

    marketplace = what_if(world, MARKETPLACE_MODEL)
    direct = what_if(world, DIRECT_MODEL)

    assert (marketplace.verdict, marketplace.outcome) == ("needsApproval", "create")
    assert marketplace.approval.rule == "marketplace"
    assert "Marketplace" in marketplace.approval.reason
    assert "Broker.Approver" in marketplace.approval.approvers
    assert "9d1c0000-0000-4000-8000-0000000000a1" in marketplace.approval.approvers
    assert marketplace.approval.expiry_hours == 72
    assert marketplace.plan[0].action == "subscribe", "the plan is what the run would write once approved"
    assert (direct.verdict, direct.approval) == ("allowed", None)


# -- refusals ------------------------------------------------------------------------------------------------------


def test_every_failing_check_is_listed_and_what_depends_on_them_skipped():
    world = build_world(location="westeurope")  # DeepSeek-R1 deploys in eastus2 and swedencentral only

    answer = what_if(world, caller=Caller.of(STRANGER))

    assert (answer.verdict, answer.outcome) == ("rejected", "rejected")
    assert outcomes(answer) == {
        **dict.fromkeys(LOCAL_CHECKS, "passed"),
        "broker-permissions": "passed",
        "requester-permission": "failed",
        "region-supported": "failed",
        "one-deployment-per-model": "skipped",
    }
    by_name = {check.name: check for check in answer.checks}
    assert by_name["requester-permission"].problem.slug == "requester-forbidden"
    assert by_name["requester-permission"].problem.status == 403
    region = by_name["region-supported"].problem
    assert (region.slug, region.title) == (
        "region-unsupported",
        "The model cannot be deployed in the workspace's region",
    )
    assert region.extensions["supportedRegions"] == ["eastus2", "swedencentral"]
    assert by_name["one-deployment-per-model"].blocked_by == "region-supported"
    assert "region-supported failed" in by_name["one-deployment-per-model"].detail
    assert answer.plan == ()
    assert "requester-permission, region-supported failed" in answer.summary


def test_an_unknown_model_skips_the_checks_that_need_to_know_how_it_is_sold(world):
    answer = what_if(world, "azureml://registries/azureml-deepseek/models/DeepSeek-R9")

    assert outcomes(answer)["model-known"] == "failed"
    skipped = {check.name: check.blocked_by for check in answer.checks if check.outcome == "skipped"}
    assert skipped == {
        "broker-permissions": "model-known",
        "region-supported": "model-known",
        "one-deployment-per-model": "region-supported",
    }
    assert outcomes(answer)["requester-permission"] == "passed"


def test_a_workspace_the_broker_does_not_deploy_into_is_not_read_at_all():
    world = build_world(preflight_policy=policy(subscriptions="7d2c0c56-0000-4a1e-9f5c-444455556666"))

    answer = what_if(world, "azureml://registries/azureml-meta/models/Unapproved-Model")

    assert outcomes(answer) == {
        "model-approved": "failed",
        "model-known": "failed",
        "workspace-allowed": "failed",
        "endpoint-name-valid": "passed",
        **dict.fromkeys(ALL_CHECKS[4:], "skipped"),
    }
    assert world.ml.calls == []
    assert world.authorization.calls == []


def test_an_azure_refusal_fails_its_check_and_skips_the_checks_after_it_that_call_azure(world):
    world.authorization.fail_next("own_permissions", AzureCallError(403, "AuthorizationFailed", "No access."))

    answer = what_if(world)

    assert outcomes(answer) == {
        **dict.fromkeys(LOCAL_CHECKS, "passed"),
        "broker-permissions": "failed",
        **dict.fromkeys(ALL_CHECKS[5:], "skipped"),
    }
    by_name = {check.name: check for check in answer.checks}
    assert by_name["broker-permissions"].problem.slug == "broker-permissions-missing"
    assert by_name["broker-permissions"].problem.extensions == {"azureCode": "AuthorizationFailed"}
    assert by_name["requester-permission"].blocked_by == "broker-permissions"


def test_a_workspace_azure_does_not_know_fails_the_check_that_reads_it(world):
    missing = WORKSPACE_ID.replace("proj-a", "proj-gone")
    world.authorization.grant(REQUESTER, RESOURCE_GROUP_SCOPE, permissions=[AI_DEVELOPER_BLOCK])

    with nothing_written(world):
        answer = world.service.what_if(
            DeploymentRequest(workspace_id=missing, model_id=DIRECT_MODEL), caller=Caller.of(REQUESTER)
        )

    region = next(check for check in answer.checks if check.name == "region-supported")
    assert (region.outcome, region.problem.slug) == ("failed", "not-found")
    assert outcomes(answer)["one-deployment-per-model"] == "skipped"


def test_a_model_the_catalog_lacks_is_let_through_when_configured_and_the_answer_warns():
    world = build_world(preflight_policy=replace(policy(), allow_uncatalogued_models=True))

    answer = what_if(world, "azureml://registries/azureml-deepseek/models/DeepSeek-R9")

    assert answer.outcome == "create"
    assert "BROKER_ALLOW_UNCATALOGUED_MODELS" in next(c.detail for c in answer.checks if c.name == "model-known")
    assert any("BROKER_ALLOW_UNCATALOGUED_MODELS" in warning for warning in answer.warnings)
    region = next(check for check in answer.checks if check.name == "region-supported")
    assert "Azure decides" in region.detail


def test_a_transient_azure_failure_is_raised_for_the_503(world):
    world.ml.fail_next("get_workspace", AzureCallError(503, "ServiceUnavailable", "Try later."))

    with pytest.raises(AzureCallError) as raised:
        what_if(world)

    assert raised.value.transient


# -- existing deployments ------------------------------------------------------------------------------------------


def test_a_request_for_a_deployment_in_flight_joins_its_run_with_the_light_checks(world):
    _may_deploy(world, COLLEAGUE)
    first = world.submit(MARKETPLACE_MODEL)
    world.step()
    run = world.run(first.run.id)

    answer = what_if(world, MARKETPLACE_MODEL, caller=Caller.of(COLLEAGUE))

    assert (answer.verdict, answer.outcome) == ("allowed", "join")
    assert (answer.run.id, answer.run.status, answer.run.operation) == (run.id, run.status, "deploy")
    assert answer.deployment_id == first.deployment.id
    assert outcomes(answer) == {
        **dict.fromkeys(LOCAL_CHECKS, "passed"),
        "requester-permission": "passed",
        **dict.fromkeys(("broker-permissions", "region-supported", "one-deployment-per-model"), "notNeeded"),
    }
    assert plan_actions(answer) == [("joinRun", "none")]
    assert answer.plan[0].target == run.id


def test_a_ready_deployment_azure_agrees_with_plans_nothing(world):
    world.deploy()

    answer = what_if(world)

    assert (answer.verdict, answer.outcome, answer.plan) == ("allowed", "ready", ())
    assert outcomes(answer)["broker-permissions"] == "notNeeded"
    assert answer.deployment_id == world.deployment().id


def test_a_ready_deployment_missing_a_secret_is_repaired_after_every_check(world):
    first = world.deploy()
    names = plan_for(first.request, CATALOG)
    world.secrets.delete_secret(names.secret_names.secondary)

    answer = what_if(world)

    assert (answer.verdict, answer.outcome) == ("allowed", "repair")
    assert outcomes(answer) == dict.fromkeys(ALL_CHECKS, "passed")
    assert [(item.type, item.reason) for item in answer.repairs] == [("KeysStored", "SecretsMissing")]
    assert plan_actions(answer) == [("keepEndpoint", "none"), ("storeSecret", "ifDifferent"), ("storeSecret", "always")]
    assert answer.plan[1].vault == world.secrets.VAULT_URL
    assert answer.approval is None


def test_a_repair_is_refused_when_a_check_the_light_path_skipped_fails(world):
    first = world.deploy()
    world.secrets.delete_secret(plan_for(first.request, CATALOG).secret_names.secondary)
    world.authorization.revoke_own()

    answer = what_if(world)

    assert (answer.verdict, answer.outcome) == ("rejected", "rejected")
    assert outcomes(answer)["broker-permissions"] == "failed"
    assert "notNeeded" not in outcomes(answer).values()


def test_a_deleted_marketplace_subscription_is_planned_to_be_bought_again(world):
    first = world.deploy(MARKETPLACE_MODEL)
    names = plan_for(first.request, CATALOG)
    world.ml.remove_subscription(WORKSPACE_ID, names.subscription_name)

    answer = what_if(world, MARKETPLACE_MODEL)

    assert answer.outcome == "repair"
    assert {item.reason for item in answer.repairs} == {"SubscriptionMissing"}
    assert plan_actions(answer) == [
        ("subscribe", "always"),
        ("keepEndpoint", "none"),
        ("storeSecret", "ifDifferent"),
        ("storeSecret", "ifDifferent"),
    ]


def test_a_run_that_ended_unheard_is_caught_up_in_memory_only(world):
    first = world.submit(MARKETPLACE_MODEL)
    failed = RunError(code="EndpointProvisioningFailed", message="It failed.")
    world.runs.update(first.run.id, lambda run: run.transition(RunStatus.FAILED, at=world.clock(), error=failed))

    answer = what_if(world, MARKETPLACE_MODEL)

    assert answer.outcome == "create", "the deployment its failed run leaves Failed is made again"
    assert outcomes(answer) == dict.fromkeys(ALL_CHECKS, "passed"), "a new run needs every check"
    assert any(first.run.id in warning and "has not heard" in warning for warning in answer.warnings)
    assert world.deployment().status.phase is Phase.PROVISIONING


def test_a_claim_whose_run_was_never_stored_is_taken_over(world):
    first = world.submit(MARKETPLACE_MODEL)
    world.runs.table.delete(_run_home(first.run.id), _run_key(first.run.id))

    answer = what_if(world, MARKETPLACE_MODEL)

    assert answer.outcome == "create"
    assert any("not stored" in warning for warning in answer.warnings)


def test_a_request_for_another_spec_is_refused_as_a_conflict(world):
    world.deploy()

    answer = what_if(world, endpointName="another-name")

    conflict = next(check for check in answer.checks if check.name == "one-deployment-per-model")
    assert (answer.outcome, conflict.outcome, conflict.problem.slug) == ("rejected", "failed", "deployment-conflict")
    assert conflict.problem.extensions["differences"] == ["endpointName"]


def test_a_deployment_being_torn_down_is_refused_without_a_failing_check(world):
    first = world.deploy()
    world.lifecycle.delete(first.deployment_id, caller=REQUESTER, delete_subscription=False)

    answer = what_if(world)

    assert (answer.verdict, answer.outcome) == ("rejected", "rejected")
    assert answer.problem.slug == "deployment-state-conflict"
    assert answer.run.operation == "delete"
    assert "failed" not in outcomes(answer).values()


def test_a_caller_who_may_not_deploy_learns_nothing_of_the_deployment(world):
    world.deploy()
    deployment = world.deployment()

    answer = what_if(world, caller=Caller.of(STRANGER))

    assert answer.outcome == "rejected"
    assert outcomes(answer)["requester-permission"] == "failed"
    assert outcomes(answer)["one-deployment-per-model"] == "skipped"
    assert "notNeeded" not in outcomes(answer).values(), "the light checks would tell a deployment exists"
    text = json.dumps(answer.to_wire())
    assert deployment.status.current_run_id not in text
    assert REQUESTER not in text


def test_a_caller_whose_access_azure_will_not_read_learns_nothing_of_the_deployment(world):
    world.deploy()
    refused = AzureCallError(403, "AuthorizationFailed", "No access.")
    world.authorization.fail_next("principal_access", refused, times=2)

    answer = what_if(world, caller=Caller.of(STRANGER))

    requester = next(check for check in answer.checks if check.name == "requester-permission")
    assert (requester.outcome, requester.problem.slug) == ("failed", "broker-permissions-missing")
    assert "notNeeded" not in outcomes(answer).values()


def test_an_auditor_who_may_not_deploy_is_shown_the_deployment(world):
    world.deploy()

    answer = what_if(world, caller=Caller.of(STRANGER, roles=[AUDITOR_ROLE]))

    assert answer.outcome == "rejected"
    assert outcomes(answer)["broker-permissions"] == "notNeeded"
    assert world.deployment().id in json.dumps(answer.to_wire())


def test_the_limits_are_the_seeds(world):
    limits = what_if(world).limits

    assert (limits.tokens_per_minute, limits.requests_per_minute, limits.deployments_per_model_per_project) == (
        200_000,
        1_000,
        1,
    )


def test_the_answer_is_camel_case_json(world):
    wire = what_if(world, MARKETPLACE_MODEL).to_wire()

    assert {"verdict", "outcome", "deploymentId", "checks", "plan", "limits", "warnings"} <= set(wire)
    assert {"blockedBy"} <= set(wire["checks"][0])
    assert wire["limits"]["tokensPerMinute"] == 200_000
    assert json.loads(json.dumps(wire)) == wire
