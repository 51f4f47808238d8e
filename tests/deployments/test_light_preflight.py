"""A request that joins a deployment in flight, or finds it Ready, is checked only for what could have changed for
it: local policy and whether its caller may deploy. Should the answer turn out to be a new run, every check runs
before anything is written."""

from __future__ import annotations

from shared.azure_ids import WorkspaceId
from shared.deployments.preflight import PreflightContext, run_join_preflight
from shared.plan import plan_for
from shared.required_permissions import REQUESTER_DEPLOY_ACTION
from shared.run_outcomes import requester_problem
from tests.lifecycle.world import HUB_ID
from tests.lifecycle.world import build as build_cross_region

from .scenario import AI_DEVELOPER_BLOCK, CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID, request

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
PREFLIGHT_READS = ("get_workspace", "list_endpoints")


def _allow(world, caller):
    world.authorization.grant(caller, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])


def _forget_calls(world):
    world.ml.calls.clear()
    world.authorization.calls.clear()


def test_joining_a_run_in_flight_reads_only_the_callers_access(world):
    _allow(world, COLLEAGUE)
    first = world.submit(MARKETPLACE_MODEL)
    world.step()
    _forget_calls(world)

    joined = world.submit(MARKETPLACE_MODEL, caller=COLLEAGUE)

    assert (joined.answer, joined.run.id) == ("joined", first.run.id)
    assert [(call.name, call.args) for call in world.authorization.calls] == [
        ("principal_access", (COLLEAGUE, WORKSPACE_ID))
    ]
    assert world.ml.calls == []


def test_a_ready_answer_reads_the_callers_access_and_what_it_observes_only(world):
    world.deploy()
    _forget_calls(world)

    answered = world.submit(DIRECT_MODEL)

    assert answered.answer == "ready"
    assert world.authorization.call_names == ["principal_access"]
    assert not set(PREFLIGHT_READS) & set(world.ml.call_names)


def test_a_joiner_who_may_not_deploy_is_refused_as_a_new_requester_would_be(world):
    world.submit(MARKETPLACE_MODEL)
    world.step()
    stranger = "5742a9e1-0000-4000-8000-000000000009"

    refused = world.submit(MARKETPLACE_MODEL, caller=stranger)
    new_request = world.preflight(request(MARKETPLACE_MODEL), caller=stranger)

    assert refused.answer == "rejected"
    assert refused.problem.kind.slug == new_request.problem.kind.slug == "requester-forbidden"
    assert refused.problem.detail == new_request.problem.detail


def test_a_request_asking_the_deployment_for_something_else_is_checked_in_full(world):
    world.submit(MARKETPLACE_MODEL)
    world.step()
    _forget_calls(world)

    conflict = world.submit(MARKETPLACE_MODEL, endpointName="another-name")

    assert conflict.problem.kind.slug == "deployment-conflict"
    assert world.authorization.calls_to("own_permissions")
    assert "get_workspace" in world.ml.call_names


def test_a_ready_deployment_azure_disagrees_with_is_repaired_only_after_every_check(world):
    first = world.deploy()
    world.secrets.delete_secret(plan_for(first.request, CATALOG).secret_names.secondary)
    world.authorization.revoke_own()
    _forget_calls(world)

    refused = world.submit(DIRECT_MODEL)

    assert refused.answer == "rejected"
    assert refused.problem.kind.slug == "broker-permissions-missing"
    assert refused.run.deployment_id == first.deployment_id
    assert world.work.sent == []
    assert "begin_create_endpoint" not in world.ml.call_names


def test_a_ready_deployment_azure_disagrees_with_is_repaired_once_every_check_passes(world):
    first = world.deploy()
    world.secrets.delete_secret(plan_for(first.request, CATALOG).secret_names.secondary)
    _forget_calls(world)

    repair = world.submit(DIRECT_MODEL)

    assert repair.answer == "repair"
    assert world.authorization.calls_to("own_permissions")
    assert set(PREFLIGHT_READS) <= set(world.ml.call_names)


def test_the_join_checks_give_way_to_the_full_ones_when_the_request_asks_for_another_spec(world):
    world.deploy()
    _forget_calls(world)
    context = PreflightContext(
        request=request(DIRECT_MODEL, endpointName="renamed"),
        caller=REQUESTER,
        policy=world.policy,
        machine_learning=world.ml,
        authorization=world.authorization,
        deployment=world.deployment(),
    )

    assert run_join_preflight(context, world.deployment()) is None
    assert world.authorization.calls_to("principal_access") == []


def test_the_join_checks_pass_incomplete_with_the_deployments_plan(world):
    world.deploy()
    _forget_calls(world)
    context = PreflightContext(
        request=request(DIRECT_MODEL),
        caller=REQUESTER,
        policy=world.policy,
        machine_learning=world.ml,
        authorization=world.authorization,
        deployment=world.deployment(),
    )

    result = run_join_preflight(context, world.deployment())

    assert result.problem is None
    assert not result.complete
    assert result.checks_passed == (
        "model-approved",
        "model-known",
        "workspace-allowed",
        "endpoint-name-valid",
        "requester-permission",
    )
    assert result.plan.endpoint_name == world.deployment().spec.endpoint_name
    assert world.ml.calls == []


# A refusal is never given from what an adapter kept.


def test_a_refusal_from_cached_access_is_read_again_fresh(world):
    world.authorization.answers_from_cache = True
    stranger = "5742a9e1-0000-4000-8000-000000000009"

    problem = requester_problem(world.authorization, WorkspaceId.parse(WORKSPACE_ID), stranger, REQUESTER_DEPLOY_ACTION)

    assert problem.kind.slug == "requester-forbidden"
    assert [call.kwargs for call in world.authorization.calls_to("principal_access")] == [{}, {"fresh": True}]


def test_a_grant_from_cached_access_and_a_fresh_refusal_are_read_once(world):
    workspace = WorkspaceId.parse(WORKSPACE_ID)
    world.authorization.answers_from_cache = True
    assert requester_problem(world.authorization, workspace, REQUESTER, REQUESTER_DEPLOY_ACTION) is None
    world.authorization.answers_from_cache = False
    assert requester_problem(world.authorization, workspace, "nobody", REQUESTER_DEPLOY_ACTION) is not None

    assert len(world.authorization.calls_to("principal_access")) == 2


# A cross-region deployment keeps its hub when the request allows it.


def test_asking_again_for_a_cross_region_deployment_keeps_its_hub_without_reading_the_workspace():
    world = build_cross_region(location="westeurope", hub=True)
    world.deploy(allow_cross_region=True)
    _forget_calls(world)

    again = world.submit(DIRECT_MODEL, allow_cross_region=True)

    assert again.answer == "ready"
    assert not set(PREFLIGHT_READS) & set(world.ml.call_names)
    assert world.authorization.call_names == ["principal_access"]


def test_asking_again_without_allowing_the_hub_is_refused_as_before():
    world = build_cross_region(location="westeurope", hub=True)
    world.deploy(allow_cross_region=True)

    refused = world.submit(DIRECT_MODEL)

    assert refused.problem.kind.slug == "region-unsupported"
    assert refused.problem.extensions["crossRegionHub"]["workspaceId"] == HUB_ID
