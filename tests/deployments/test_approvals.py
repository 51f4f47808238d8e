"""Approvals: a deploy run the approval policy names waits in PendingApproval, before any Azure write, until an
approver approves it (it then goes on as intake would have started it), rejects it, or it expires; joiners, decisions
and events follow the rules of shared/deployments/approvals.py."""

import json
from datetime import timedelta

import pytest

from shared.access import DEFAULT_APPROVER_ROLE, Caller
from shared.approvals import ApprovalPolicy
from shared.deployment import Phase
from shared.deployments.approvals import ApprovalExpiry
from shared.engine import PROVISION, SUBSCRIBE
from shared.events import EVENT_TYPE_PREFIX
from shared.runs import RunStatus
from shared.watchdog import Watchdog

from .approving import APPROVER_GROUP, ENABLED, approving_world
from .scenario import (
    AI_DEVELOPER_BLOCK,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    REQUESTER,
    SUBSCRIPTION,
    WORKSPACE_ID,
    World,
    request,
)

APPROVER = Caller.of("a99a0000-0000-4000-8000-00000000000a", roles=[DEFAULT_APPROVER_ROLE])
SECOND_APPROVER = Caller.of("a99a0000-0000-4000-8000-00000000000b", roles=[DEFAULT_APPROVER_ROLE])
GROUP_APPROVER = Caller.of("a99a0000-0000-4000-8000-00000000000c", groups=[APPROVER_GROUP])
COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
REQUESTER_CALLER = Caller.of(REQUESTER, roles=[DEFAULT_APPROVER_ROLE])
AZURE_WRITES = ("begin_create_endpoint", "begin_create_subscription", "begin_delete_endpoint", "list_keys")
STALL_SECONDS = 60.0


@pytest.fixture
def world() -> World:
    return approving_world()


def allow(world, *callers):
    for caller in callers:
        world.authorization.grant(caller, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])


def azure_writes(world):
    return [name for name in world.ml.call_names if name in AZURE_WRITES]


def events(world, kind):
    return [body for body in world.events.bodies if body["type"] == f"{EVENT_TYPE_PREFIX}.{kind}"]


def kinds(world):
    return [body["type"].rsplit(".", 1)[-1] for body in world.events.bodies]


def pending(world, model=MARKETPLACE_MODEL, **fields):
    submission = world.submit(model, **fields)
    assert submission.answer == "created", submission
    assert submission.run.status is RunStatus.PENDING_APPROVAL
    return submission.run


def host_dies():
    raise ConnectionError("the host died")


def watchdog(world) -> Watchdog:
    expire = ApprovalExpiry(runs=world.runs, events=world.events, clock=world.clock)
    return Watchdog(runs=world.runs, work=world.work, clock=world.clock, stall_seconds=STALL_SECONDS, expire=expire)


# Gating at intake.


def test_a_marketplace_request_waits_for_approval_before_any_azure_write(world):
    submission = world.submit(MARKETPLACE_MODEL, ticket="CHG-1")

    run = submission.run
    assert (submission.answer, submission.accepted) == ("created", True)
    assert [step.status for step in run.steps] == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.PENDING_APPROVAL]
    assert world.run(run.id) == run
    assert run.approval.rule == "marketplace"
    assert "Marketplace" in run.approval.reason
    assert run.steps[-1].detail == run.approval.reason
    assert (run.approval.requested_at, run.approval.expires_at) == (world.clock.now, world.clock.now + ENABLED.expiry)
    assert run.approval.pending
    assert run.approval.decided_by is None
    assert azure_writes(world) == []
    assert world.secrets.calls_to("set_secret") == []
    assert world.work.sent == []
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.PENDING_APPROVAL, run.id)
    assert kinds(world) == ["accepted", "approvalrequested"]
    (requested,) = events(world, "approvalrequested")
    assert requested["id"] == f"{run.id}/approvalrequested"
    assert requested["data"]["ticket"] == "CHG-1"
    assert requested["data"]["status"] == "PendingApproval"
    assert requested["data"]["approval"] == {
        "rule": "marketplace",
        "reason": run.approval.reason,
        "requestedAt": "2026-11-27T09:00:00Z",
        "expiresAt": "2026-11-30T09:00:00Z",
        "decision": None,
        "decidedBy": None,
        "decidedAt": None,
        "comment": None,
    }


def test_a_model_sold_directly_needs_no_approval(world):
    submission = world.submit(DIRECT_MODEL)

    assert submission.run.status is RunStatus.PROVISIONING
    assert submission.run.approval is None
    assert world.work.bodies[0]["step"] == PROVISION


def test_a_disabled_policy_asks_nothing():
    world = approving_world(ApprovalPolicy(enabled=False, publishers="deepseek"))

    submission = world.submit(MARKETPLACE_MODEL)

    assert submission.run.status is RunStatus.SUBSCRIBING
    assert world.deployment().status.phase is Phase.PROVISIONING


@pytest.mark.parametrize(
    ("settings", "rule"),
    [
        ({"publishers": "DeepSeek"}, "publisher"),
        ({"model_ids": f"{DIRECT_MODEL}/versions/2"}, "model"),
        ({"workspace_ids": WORKSPACE_ID.upper()}, "workspace"),
        ({"subscription_ids": SUBSCRIPTION}, "subscription"),
    ],
)
def test_each_policy_dimension_can_ask_for_a_model_sold_directly(settings, rule):
    world = approving_world(ApprovalPolicy.from_settings(enabled=True, marketplace=False, **settings))

    run = pending(world, DIRECT_MODEL)

    assert run.approval.rule == rule
    assert world.work.sent == []


def test_without_the_marketplace_rule_a_marketplace_model_goes_ahead():
    world = approving_world(ApprovalPolicy.from_settings(enabled=True, marketplace=False))

    assert world.submit(MARKETPLACE_MODEL).run.status is RunStatus.SUBSCRIBING


def test_a_queue_message_for_a_marketplace_model_waits_too(world):
    body = {"workspaceId": WORKSPACE_ID, "modelId": MARKETPLACE_MODEL, "requestedBy": REQUESTER, "ticket": "Q-1"}

    submission = world.service.intake_message(json.dumps(body), message_id="m-1")

    assert submission.run.status is RunStatus.PENDING_APPROVAL
    assert submission.run.caller == REQUESTER
    assert world.work.sent == []
    assert azure_writes(world) == []
    assert [event["data"]["ticket"] for event in world.events.bodies] == ["Q-1", "Q-1"]


def test_a_repair_does_not_ask_again(world):
    run = pending(world)
    world.service.approve(run.id, caller=APPROVER)
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    plan_endpoint = world.run(run.id).endpoint.name
    world.ml.endpoints.pop(next(key for key in world.ml.endpoints if key[1] == plan_endpoint.lower()))

    repair = world.submit(MARKETPLACE_MODEL)

    assert repair.answer == "repair"
    assert repair.run.status is not RunStatus.PENDING_APPROVAL
    assert repair.run.approval is None
    assert world.work.bodies[-1]["run_id"] == repair.run.id


# Joining a waiting run.


def test_a_repeated_request_joins_the_waiting_run_with_its_own_events(world):
    allow(world, COLLEAGUE)
    run = pending(world, ticket="CHG-1")

    joined = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE)

    assert joined.answer == "joined"
    assert joined.run.id == run.id
    assert joined.run.status is RunStatus.PENDING_APPROVAL
    assert [joiner.caller for joiner in joined.run.joined] == [COLLEAGUE]
    assert len(world.runs.all_runs) == 1
    assert world.work.sent == []
    assert world.deployment().status.phase is Phase.PENDING_APPROVAL
    assert [(event["id"], event["data"]["ticket"]) for event in world.events.bodies[2:]] == [
        (f"{run.id}/accepted/{joined.run.joined[0].request_id}", "CHG-2"),
        (f"{run.id}/approvalrequested/{joined.run.joined[0].request_id}", "CHG-2"),
    ]


def test_a_request_joining_while_the_run_is_approved_hears_the_approval_itself(world):
    allow(world, COLLEAGUE)
    run = pending(world)
    # The approval lands between the joiner's read of the run and its joiner row: the approver lists no joiner.
    world.runs.before_next("join_run", lambda: world.service.approve(run.id, caller=APPROVER))

    joined = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE)

    request_id = joined.run.joined[0].request_id
    approved = [event for event in events(world, "approved") if event["data"]["ticket"] == "CHG-2"]
    assert [event["id"] for event in approved] == [f"{run.id}/approved/{request_id}"]


# Approving.


def test_approving_queues_the_first_step_and_tells_every_request(world):
    allow(world, COLLEAGUE)
    run = pending(world, ticket="CHG-1")
    joiner = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE).run.joined[0]
    world.clock.advance(3600)

    decision = world.service.approve(run.id, caller=APPROVER, comment="Budget approved in FIN-7.")

    approved = decision.run
    assert decision.problem is None
    assert not decision.repeated
    assert approved.status is RunStatus.SUBSCRIBING
    assert approved.steps[-1].detail.startswith(f"approved by {APPROVER.object_id}; ")
    assert approved.approval.decision == "approved"
    assert (approved.approval.decided_by, approved.approval.decided_at) == (APPROVER.object_id, world.clock.now)
    assert approved.approval.comment == "Budget approved in FIN-7."
    assert [joined.caller for joined in approved.joined] == [COLLEAGUE]
    assert world.work.bodies == [
        {"run_id": run.id, "step": SUBSCRIBE, "attempt": 0, "step_token": world.run(run.id).step_token}
    ]
    assert world.deployment().status.phase is Phase.PROVISIONING
    assert [(event["id"], event["data"]["ticket"]) for event in events(world, "approved")] == [
        (f"{run.id}/approved", "CHG-1"),
        (f"{run.id}/approved/{joiner.request_id}", "CHG-2"),
    ]
    assert events(world, "approved")[0]["data"]["approval"]["decidedBy"] == APPROVER.object_id

    world.drain()
    finished = world.run(run.id)
    assert finished.status is RunStatus.SUCCEEDED
    assert finished.approval == approved.approval
    assert world.deployment().status.phase is Phase.READY
    assert [event["data"]["ticket"] for event in events(world, "succeeded")] == ["CHG-1", "CHG-2"]


def test_an_approver_by_group_may_approve(world):
    run = pending(world)

    assert world.service.approve(run.id, caller=GROUP_APPROVER).run.status is RunStatus.SUBSCRIBING


def test_an_approval_runs_preflight_again_and_a_requester_who_lost_access_is_rejected(world):
    run = pending(world, ticket="CHG-1")
    world.authorization.revoke(REQUESTER)

    decision = world.service.approve(run.id, caller=APPROVER, comment="ok")

    ended = decision.run
    assert decision.problem is None
    assert ended.status is RunStatus.REJECTED
    assert ended.error.code == "requester-forbidden"
    assert (ended.approval.decision, ended.approval.decided_by) == ("approved", APPROVER.object_id)
    assert world.work.sent == []
    assert azure_writes(world) == []
    assert world.deployment().status.phase is Phase.FAILED
    assert kinds(world)[2:] == ["approved", "rejected"]


def test_a_host_dying_after_the_approval_is_written_leaves_the_run_to_the_watchdog(world, monkeypatch):
    run = pending(world)
    sent = world.work.send

    def dies(message, *, delay_seconds=0):
        monkeypatch.setattr(world.work, "send", sent)
        raise ConnectionError("the host died before queueing the first step")

    monkeypatch.setattr(world.work, "send", dies)
    with pytest.raises(ConnectionError):
        world.service.approve(run.id, caller=APPROVER)
    assert world.run(run.id).status is RunStatus.SUBSCRIBING
    assert world.work.sent == []

    world.clock.advance(STALL_SECONDS)
    report = watchdog(world).sweep()

    assert [recovery.step for recovery in report.recovered] == [SUBSCRIBE]
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED


# Rejecting.


def test_rejecting_ends_the_run_with_the_comment_and_releases_a_new_deployment(world):
    allow(world, COLLEAGUE)
    run = pending(world, ticket="CHG-1")
    joiner = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE).run.joined[0]

    decision = world.service.reject(run.id, caller=APPROVER, comment="Use the sold-directly model instead.")

    ended = decision.run
    assert ended.status is RunStatus.REJECTED
    assert ended.error.code == "approval-rejected"
    assert "Use the sold-directly model instead." in ended.error.message
    assert ended.approval.decision == "rejected"
    assert (ended.approval.decided_by, ended.approval.comment) == (
        APPROVER.object_id,
        "Use the sold-directly model instead.",
    )
    assert world.work.sent == []
    assert azure_writes(world) == []
    deployment = world.deployment()
    assert deployment.status.phase is Phase.FAILED
    assert deployment.is_gone
    assert deployment.status.error.code == "approval-rejected"
    assert [(event["id"], event["data"]["ticket"]) for event in world.events.bodies[4:]] == [
        (f"{run.id}/approvalrejected", "CHG-1"),
        (f"{run.id}/approvalrejected/{joiner.request_id}", "CHG-2"),
        (f"{run.id}/rejected", "CHG-1"),
        (f"{run.id}/rejected/{joiner.request_id}", "CHG-2"),
    ]

    again = world.submit(MARKETPLACE_MODEL, ticket="CHG-3")
    assert again.answer == "created"
    assert again.run.id != run.id
    assert again.run.status is RunStatus.PENDING_APPROVAL


# Who may decide.


def test_a_caller_without_the_approver_role_may_not_decide_and_learns_nothing_of_the_run(world):
    run = pending(world)
    outsider = Caller.of(COLLEAGUE, roles=["Broker.Auditor"])

    for run_id in (run.id, "no-such-run"):
        for decide in (world.service.approve, world.service.reject):
            kwargs = {"comment": "no"} if decide == world.service.reject else {}
            decision = decide(run_id, caller=outsider, **kwargs)
            assert decision.problem.kind.slug == "approver-required"
            assert decision.run is None
    assert world.run(run.id).status is RunStatus.PENDING_APPROVAL


def test_requesters_may_not_decide_their_own_request_nor_one_they_joined(world):
    allow(world, APPROVER.object_id)
    run = pending(world)
    world.service.submit(request(MARKETPLACE_MODEL), caller=APPROVER.object_id)

    for approver in (REQUESTER_CALLER, APPROVER):
        assert world.service.approve(run.id, caller=approver).problem.kind.slug == "self-approval-forbidden"
        assert world.service.reject(run.id, caller=approver, comment="x").problem.kind.slug == "self-approval-forbidden"
    assert world.run(run.id).status is RunStatus.PENDING_APPROVAL
    assert world.service.approve(run.id, caller=SECOND_APPROVER).run.status is RunStatus.SUBSCRIBING


def test_an_unknown_run_is_not_found(world):
    assert world.service.approve("run-none.00000000", caller=APPROVER).problem.kind.slug == "not-found"


# Repeated, conflicting and concurrent decisions.


def test_the_same_decision_again_converges_and_the_other_one_conflicts(world):
    approved = pending(world)
    first = world.service.approve(approved.id, caller=APPROVER, comment="first")
    world.clock.advance(10)

    again = world.service.approve(approved.id, caller=SECOND_APPROVER, comment="second")
    conflict = world.service.reject(approved.id, caller=SECOND_APPROVER, comment="too late")

    assert (again.problem, again.repeated) == (None, True)
    assert again.run.approval == first.run.approval
    assert conflict.problem.kind.slug == "run-state-conflict"
    assert dict(conflict.problem.extensions) == {
        "runId": approved.id,
        "runStatus": "Subscribing",
        "decision": "approved",
    }
    assert len(world.work.sent) == 1
    assert len(events(world, "approved")) == 1


def test_a_rejected_run_cannot_be_approved_and_a_run_that_never_waited_cannot_be_decided(world):
    rejected = pending(world)
    world.service.reject(rejected.id, caller=APPROVER, comment="no")
    direct = world.submit(DIRECT_MODEL).run

    assert world.service.reject(rejected.id, caller=SECOND_APPROVER, comment="no!").repeated
    refused = world.service.approve(rejected.id, caller=SECOND_APPROVER)
    never = world.service.approve(direct.id, caller=APPROVER)

    assert refused.problem.kind.slug == "run-state-conflict"
    assert "was rejected already" in refused.problem.detail
    assert never.problem.kind.slug == "run-state-conflict"
    assert dict(never.problem.extensions)["decision"] is None
    assert "never waited for approval" in never.problem.detail


def test_of_two_concurrent_decisions_the_first_written_wins_and_the_other_answers_from_it(world):
    run = pending(world)
    # The rejection lands between the approval's preflight and its write.
    world.runs.before_next("save", lambda: world.service.reject(run.id, caller=SECOND_APPROVER, comment="no"))

    lost = world.service.approve(run.id, caller=APPROVER)

    assert lost.problem.kind.slug == "run-state-conflict"
    assert lost.run.status is RunStatus.REJECTED
    assert lost.run.approval.decided_by == SECOND_APPROVER.object_id
    assert world.work.sent == []
    assert events(world, "approved") == []
    assert kinds(world)[2:] == ["approvalrejected", "rejected"]


def test_two_concurrent_approvals_start_the_run_once(world):
    run = pending(world)
    world.runs.before_next("save", lambda: world.service.approve(run.id, caller=SECOND_APPROVER))

    second = world.service.approve(run.id, caller=APPROVER)

    assert second.repeated
    assert second.run.approval.decided_by == SECOND_APPROVER.object_id
    assert len(world.work.sent) == 1
    assert len(events(world, "approved")) == 1


# Expiry.


def test_a_waiting_run_is_neither_silent_nor_unresumable_to_the_watchdog(world):
    run = pending(world)
    world.clock.advance(timedelta(hours=71).total_seconds())

    report = watchdog(world).sweep()

    assert (report.in_flight, report.awaiting_approval) == (1, 1)
    assert report.recovered == []
    assert report.unresumable == []
    assert report.expired == []
    assert world.run(run.id).status is RunStatus.PENDING_APPROVAL
    assert world.work.sent == []


def test_an_expired_approval_is_rejected_by_exactly_one_of_two_concurrent_sweeps(world):
    allow(world, COLLEAGUE)
    run = pending(world, ticket="CHG-1")
    joiner = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE).run.joined[0]
    world.clock.advance(ENABLED.expiry.total_seconds())
    first, second = watchdog(world), watchdog(world)
    reports = []
    world.runs.before_next("save", lambda: reports.append(second.sweep()))

    reports.append(first.sweep())

    assert sorted(len(report.expired) for report in reports) == [0, 1]
    ended = world.run(run.id)
    assert ended.status is RunStatus.REJECTED
    assert ended.error.code == "approval-expired"
    assert (ended.approval.decision, ended.approval.decided_by) == ("expired", None)
    assert ended.approval.decided_at == world.clock.now
    assert world.deployment().status.phase is Phase.FAILED
    assert [(event["id"], event["data"]["ticket"]) for event in world.events.bodies[4:]] == [
        (f"{run.id}/approvalrejected", "CHG-1"),
        (f"{run.id}/approvalrejected/{joiner.request_id}", "CHG-2"),
        (f"{run.id}/rejected", "CHG-1"),
        (f"{run.id}/rejected/{joiner.request_id}", "CHG-2"),
    ]
    assert events(world, "approvalrejected")[0]["data"]["approval"]["decision"] == "expired"


def test_a_decision_after_the_expiry_but_before_the_sweep_finds_it_expired(world):
    run = pending(world)
    world.clock.advance(ENABLED.expiry.total_seconds() + 1)

    decision = world.service.approve(run.id, caller=APPROVER)

    assert decision.problem.kind.slug == "run-state-conflict"
    assert dict(decision.problem.extensions)["decision"] == "expired"
    assert world.run(run.id).error.code == "approval-expired"
    assert world.work.sent == []


def test_the_expiry_comes_from_the_policy():
    world = approving_world(ApprovalPolicy(enabled=True, expiry=timedelta(minutes=5)))
    run = pending(world)

    assert run.approval.expires_at == run.approval.requested_at + timedelta(minutes=5)
    world.clock.advance(300)
    assert watchdog(world).sweep().expired == [run.id]


# Deleting a deployment whose request waits.


def test_deleting_a_waiting_deployment_withdraws_the_request_and_leaves_it_deleted(world):
    run = pending(world, ticket="CHG-1")

    submission = world.lifecycle.delete(run.deployment_id, caller=REQUESTER, delete_subscription=False)

    assert submission.answer == "created"
    assert submission.run.operation == "delete"
    withdrawn = world.run(run.id)
    assert withdrawn.status is RunStatus.REJECTED
    assert withdrawn.error.code == "approval-withdrawn"
    assert (withdrawn.approval.decision, withdrawn.approval.decided_by) == ("withdrawn", REQUESTER)
    assert kinds(world)[2:5] == ["approvalrejected", "rejected", "accepted"]
    world.drain()
    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert world.deployment().status.phase is Phase.DELETED
    assert azure_writes(world) == []


def test_a_caller_who_may_not_delete_cannot_withdraw_the_request(world):
    run = pending(world)

    submission = world.lifecycle.delete(run.deployment_id, caller=COLLEAGUE, delete_subscription=False)

    assert submission.problem.kind.slug == "requester-forbidden"
    assert world.run(run.id).status is RunStatus.PENDING_APPROVAL
    assert world.deployment().status.phase is Phase.PENDING_APPROVAL


def test_a_run_rejected_while_its_deployment_was_not_told_is_caught_up_by_the_next_request(world):
    run = pending(world)
    # The host dies between the rejected run's write and its deployment's.
    world.runs.before_next("save_deployment", host_dies)
    with pytest.raises(ConnectionError):
        world.service.reject(run.id, caller=APPROVER, comment="no")
    assert world.deployment().status.phase is Phase.PENDING_APPROVAL

    again = world.submit(MARKETPLACE_MODEL)

    assert again.answer == "created"
    assert again.run.id != run.id
    assert again.run.status is RunStatus.PENDING_APPROVAL
    assert world.deployment().status.current_run_id == again.run.id


def test_a_retry_under_the_same_idempotency_key_gets_the_waiting_run_then_how_it_ended(world):
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    waiting = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")
    world.service.reject(first.run.id, caller=APPROVER, comment="no")
    ended = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert (waiting.answer, waiting.run.status) == ("replayed", RunStatus.PENDING_APPROVAL)
    assert (ended.answer, ended.problem.kind.slug, ended.problem.status) == ("rejected", "approval-rejected", 403)
    assert dict(ended.problem.extensions) == {"decidedBy": APPROVER.object_id}
