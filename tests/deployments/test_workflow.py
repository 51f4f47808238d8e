"""The provisioning workflow, driven one work message at a time as the worker would receive them."""

import logging
from datetime import timedelta

import pytest

from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, Phase
from shared.engine import PROVISION, STORE_KEYS, SUBSCRIBE, VERIFY, StepTimings, WorkItem
from shared.key_secrets import KEY_FINGERPRINT_TAG, SECRET_CONTENT_TYPE, key_fingerprint
from shared.lifecycle.settings import DEFAULT_KEY_VALIDITY_DAYS
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.pacing import WritePacer
from shared.plan import plan_for
from shared.redaction import REDACTED, default_registry
from shared.runs import RunError, RunStatus

from .scenario import (
    CATALOG,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    REQUESTER,
    SUBSCRIPTION,
    WORKSPACE_ID,
    build_world,
    request,
)

SUBSCRIPTION_NAME = "Cohere-command-r-08-2024-subscription"
THROTTLED = AzureCallError(429, "TooManyRequests", "Rate limit exceeded.", retry_after=17)
DEPLOY_STATUSES = [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.SUBSCRIBING, RunStatus.PROVISIONING]
FINISH_STATUSES = [RunStatus.STORING_KEYS, RunStatus.VERIFYING, RunStatus.SUCCEEDED]


def submit(world, model=MARKETPLACE_MODEL, **fields):
    submission = world.service.submit(request(model, **fields), caller=REQUESTER)
    assert submission.answer == "created"
    return submission.run


def plan_of(run):
    return plan_for(run.request, CATALOG)


def status_of(world, run_id):
    return world.run(run_id).status


def statuses(run):
    return [step.status for step in run.steps]


def conditions(world):
    return {item.type: (item.status, item.reason) for item in world.deployment().status.conditions}


def key_versions(world, plan):
    return [
        len(world.secrets.versions[name.lower()]) for name in (plan.secret_names.primary, plan.secret_names.secondary)
    ]


# The happy paths.


def test_a_marketplace_model_is_subscribed_provisioned_its_keys_stored_and_verified(world):
    run = submit(world, ticket="CHG-42", tags={"costCenter": "ai-1"}, content_safety="Disabled")
    plan = plan_of(run)

    world.drain()

    done = world.run(run.id)
    assert statuses(done) == DEPLOY_STATUSES + FINISH_STATUSES
    # Each long-running operation was started once and polled by delayed messages, as ARM's Retry-After asked; the
    # poll that sees one finished carries straight on to the next steps, so no message goes between them.
    assert [(m.body["step"], "operation_url" in m.body, m.delay_seconds) for m in world.processed] == [
        (SUBSCRIBE, False, 0),
        (SUBSCRIBE, True, 3.0),
        (SUBSCRIBE, True, 4.0),
        (PROVISION, True, 3.0),
        (PROVISION, True, 4.0),
    ]
    assert [call.kwargs for call in world.ml.calls_to("begin_create_subscription")] == [{"model_id": MARKETPLACE_MODEL}]
    assert world.ml.subscription(WORKSPACE_ID, SUBSCRIPTION_NAME).status == "Subscribed"
    (create,) = world.ml.calls_to("begin_create_endpoint")
    assert create.args == (WORKSPACE_ID, plan.endpoint_name)
    assert create.kwargs == {
        "model_id": MARKETPLACE_MODEL,
        "location": "eastus2",
        "content_safety": "Disabled",
        "tags": {"costCenter": "ai-1", MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": run.id},
    }

    endpoint = world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name)
    assert done.endpoint.model_dump() == {"name": endpoint.name, "id": endpoint.id, "scoring_uri": endpoint.scoring_uri}
    assert endpoint.scoring_uri is not None

    keys = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    primary = world.secrets.latest(plan.secret_names.primary)
    secondary = world.secrets.latest(plan.secret_names.secondary)
    assert (primary.value, secondary.value) == (keys.primary, keys.secondary)
    assert (done.secret_ids.primary, done.secret_ids.secondary) == (primary.secret.id, secondary.secret.id)
    for version, key_type in ((primary, "primary"), (secondary, "secondary")):
        assert version.secret.content_type == SECRET_CONTENT_TYPE
        assert version.secret.tags == {
            "workspace": WORKSPACE_ID,
            "endpoint": plan.endpoint_name,
            "model": MARKETPLACE_MODEL,
            "run": run.id,
            "keyType": key_type,
            MANAGED_BY_TAG: MANAGED_BY_VALUE,
            # The dual-key rotation tags, as keys get a validity period by default.
            "CredentialId": key_type,
            "ProviderAddress": endpoint.id,
            "ValidityPeriodDays": str(DEFAULT_KEY_VALIDITY_DAYS),
            # Hygiene's key-drift check compares this with listKeys instead of reading the value.
            KEY_FINGERPRINT_TAG: key_fingerprint(version.value),
        }
        assert version.secret.expires_on == world.clock() + timedelta(days=DEFAULT_KEY_VALIDITY_DAYS)

    deployment = world.deployment()
    assert (deployment.id, deployment.status.phase) == (done.deployment_id, Phase.READY)
    assert (deployment.status.endpoint, deployment.status.secret_ids) == (done.endpoint, done.secret_ids)
    assert (deployment.status.current_run_id, deployment.status.keys_run_id) == (run.id, run.id)
    assert deployment.all_conditions_true

    assert world.event_types() == ["accepted", "succeeded"]
    succeeded = world.events.bodies[-1]
    assert (succeeded["subject"], succeeded["id"]) == (run.id, f"{run.id}/succeeded")
    assert succeeded["data"] == {
        "runId": run.id,
        "deploymentId": deployment.id,
        "operation": "deploy",
        "ticket": "CHG-42",
        "status": "Succeeded",
        "workspaceId": WORKSPACE_ID,
        "modelId": MARKETPLACE_MODEL,
        "endpointName": endpoint.name,
        "endpointId": endpoint.id,
        "scoringUri": endpoint.scoring_uri,
        "secretIds": {"primary": primary.secret.id, "secondary": secondary.secret.id},
        "error": None,
    }


def test_each_step_records_what_it_saw_on_the_deployment(stepwise):
    world = stepwise
    submit(world)
    pending = ("Unknown", "Pending")
    assert set(conditions(world).values()) == {pending}

    world.step_until(PROVISION)
    world.clock.advance(60)
    assert conditions(world) == {
        ConditionType.SUBSCRIPTION_READY: ("True", "Subscribed"),
        ConditionType.ENDPOINT_READY: pending,
        ConditionType.KEYS_STORED: pending,
        ConditionType.HEALTHY: pending,
    }
    world.step_until(STORE_KEYS)
    assert conditions(world)[ConditionType.ENDPOINT_READY] == ("True", "Provisioned")
    assert conditions(world)[ConditionType.KEYS_STORED] == pending
    world.step_until(VERIFY)
    assert conditions(world)[ConditionType.KEYS_STORED] == ("True", "Stored")
    assert conditions(world)[ConditionType.HEALTHY] == pending
    world.clock.advance(60)
    world.drain()

    assert conditions(world)[ConditionType.HEALTHY] == ("True", "Online")
    transitions = {item.type: item.last_transition_time for item in world.deployment().status.conditions}
    start = world.deployment().created_at
    assert transitions[ConditionType.SUBSCRIPTION_READY] == start
    assert transitions[ConditionType.ENDPOINT_READY] == transitions[ConditionType.KEYS_STORED]
    assert transitions[ConditionType.HEALTHY] == world.clock()


def test_endpoint_keys_appear_nowhere_but_in_key_vault(world, caplog):
    caplog.set_level(logging.DEBUG)
    run = submit(world)

    world.drain()

    keys = world.ml.endpoint_keys(WORKSPACE_ID, plan_of(run).endpoint_name)
    written = world.everything_written() + caplog.text + repr(world.run(run.id))
    assert keys.primary not in written
    assert keys.secondary not in written
    # The values are registered for scrubbing, should any log line ever carry one.
    assert default_registry.redact(f"key={keys.primary}") == f"key={REDACTED}"


def test_a_model_sold_directly_skips_the_subscription(world):
    run = submit(world, DIRECT_MODEL)
    assert run.status is RunStatus.PROVISIONING

    world.drain()

    done = world.run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert RunStatus.SUBSCRIBING not in statuses(done)
    assert not [name for name in world.ml.call_names if "subscription" in name]
    # The poll that sees the endpoint provisioned stores its keys and verifies in the same invocation.
    assert [m.body["step"] for m in world.processed] == [PROVISION, PROVISION, PROVISION]
    assert conditions(world)[ConditionType.SUBSCRIPTION_READY] == ("True", "NotRequired")


def test_stepwise_every_hand_off_is_a_queued_message(stepwise):
    world = stepwise
    submit(world, DIRECT_MODEL)

    world.drain()

    assert [m.body["step"] for m in world.processed] == [PROVISION, PROVISION, PROVISION, STORE_KEYS, VERIFY]
    assert world.run(world.processed[0].body["run_id"]).status is RunStatus.SUCCEEDED


def test_a_subscribed_subscription_is_reused(stepwise):
    world = stepwise
    world.ml.add_subscription(WORKSPACE_ID, SUBSCRIPTION_NAME, MARKETPLACE_MODEL, status="Subscribed")
    run = submit(world)
    world.ml.calls.clear()

    world.step()

    assert status_of(world, run.id) is RunStatus.PROVISIONING
    assert world.ml.call_names == ["get_subscription"]
    assert world.work.bodies == [{"run_id": run.id, "step": PROVISION, "attempt": 0, "step_token": run.step_token + 1}]
    world.drain()
    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert world.ml.calls_to("begin_create_subscription") == []


def test_a_suspended_subscription_is_subscribed_again(world):
    world.ml.add_subscription(WORKSPACE_ID, SUBSCRIPTION_NAME, MARKETPLACE_MODEL, status="Suspended")
    run = submit(world)

    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert len(world.ml.calls_to("begin_create_subscription")) == 1


def test_an_operation_without_retry_after_is_polled_at_the_configured_interval():
    world = build_world(timings=StepTimings(poll_seconds=2.5))
    world.ml.operation_retry_after = None
    world.ml.poll_retry_after = None
    submit(world, DIRECT_MODEL)

    world.drain()

    assert [m.delay_seconds for m in world.processed] == [0, 2.5, 2.5]


def test_an_operation_is_polled_less_often_as_it_ages():
    world = build_world(timings=StepTimings(poll_seconds=2, poll_age_fraction=0.1, poll_max_seconds=30))
    world.ml.operation_retry_after = None
    world.ml.poll_retry_after = None
    world.ml.polls_before_done = 40
    submit(world, DIRECT_MODEL)

    while world.work.sent:
        world.clock.advance(world.work.sent[0].delay_seconds)
        world.step()

    delays = [m.delay_seconds for m in world.processed[1:]]
    assert delays[:10] == [2] * 10
    assert delays == sorted(delays)
    assert delays[-1] == 30
    assert world.run(world.processed[0].body["run_id"]).status is RunStatus.SUCCEEDED


def test_a_write_that_finishes_at_once_is_confirmed_by_reading_the_resource_again(world):
    world.ml.synchronous = True
    run = submit(world)

    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert world.ml.calls_to("get_operation") == []
    assert [(m.body["step"], m.body["attempt"], m.delay_seconds) for m in world.processed] == [
        (SUBSCRIBE, 0, 0),
        (SUBSCRIBE, 1, 1),
        (PROVISION, 1, 1),
    ]


# Endpoints that are not ready yet.


def test_an_endpoint_still_creating_after_its_operation_is_polled_again(world):
    world.ml.endpoint_outcome = "Creating"
    run = submit(world, DIRECT_MODEL)
    for _ in range(3):
        world.step()

    assert status_of(world, run.id) is RunStatus.PROVISIONING
    again = world.work.sent[-1]
    assert again.body["step"] == PROVISION
    assert again.delay_seconds == StepTimings().poll_seconds

    plan = plan_of(run)
    world.ml.set_endpoint_state(WORKSPACE_ID, plan.endpoint_name, "Succeeded")
    world.ml.set_endpoint_health(WORKSPACE_ID, plan.endpoint_name, "Online")
    world.drain()
    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1


def test_a_creating_endpoint_found_without_an_operation_is_watched_not_created_again(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.add_endpoint(WORKSPACE_ID, plan_of(run).endpoint_name, DIRECT_MODEL, provisioning_state="Creating")

    message = world.step()

    assert message.body == {"run_id": run.id, "step": PROVISION, "attempt": 0, "step_token": run.step_token}
    assert world.work.sent[-1].body == {**message.body, "waiting_since": world.clock().timestamp()}
    assert world.work.sent[-1].delay_seconds == StepTimings().poll_seconds
    assert world.ml.calls_to("begin_create_endpoint") == []


def test_a_failed_endpoint_found_without_an_operation_is_created_again(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.add_endpoint(WORKSPACE_ID, plan_of(run).endpoint_name, DIRECT_MODEL, provisioning_state="Failed")

    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1


# Storing keys: a new version only where Key Vault's differs.


def test_keys_key_vault_already_holds_are_not_written_again(world):
    plan = plan_for(request(DIRECT_MODEL), CATALOG)
    world.ml.add_endpoint(WORKSPACE_ID, plan.endpoint_name, DIRECT_MODEL, tags={MANAGED_BY_TAG: MANAGED_BY_VALUE})
    keys = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    for name, value in ((plan.secret_names.primary, keys.primary), (plan.secret_names.secondary, keys.secondary)):
        world.secrets.set_secret(name, value, content_type=SECRET_CONTENT_TYPE, tags={})
    world.secrets.calls.clear()

    run = submit(world, DIRECT_MODEL)
    assert run.status is RunStatus.STORING_KEYS
    world.drain()

    done = world.run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert world.secrets.calls_to("set_secret") == []
    assert key_versions(world, plan) == [1, 1]
    assert done.steps[-2].detail == "Key Vault already holds the current keys"
    assert done.secret_ids.primary == world.secrets.latest(plan.secret_names.primary).secret.id


@pytest.mark.parametrize(
    ("break_it", "versions"),
    [
        ("disable primary", [2, 1]),
        ("delete secondary", [1, 1]),
        ("regenerate primary and disable secondary", [2, 2]),
    ],
)
def test_a_repair_writes_a_key_only_where_key_vault_is_missing_disabled_or_different(world, break_it, versions):
    first = world.deploy()
    plan = plan_of(first)
    endpoint = plan.endpoint_name
    if break_it == "disable primary":
        world.secrets.set_enabled(plan.secret_names.primary, False)
    elif break_it == "delete secondary":
        world.secrets.delete_secret(plan.secret_names.secondary)
    else:
        world.ml.regenerate_key(WORKSPACE_ID, endpoint, "primary")
        world.secrets.set_enabled(plan.secret_names.secondary, False)
    world.secrets.calls.clear()

    repair = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)
    world.drain()

    assert repair.answer == "repair"
    assert repair.run.status is RunStatus.STORING_KEYS
    assert world.run(repair.run.id).status is RunStatus.SUCCEEDED
    assert key_versions(world, plan) == versions
    keys = world.ml.endpoint_keys(WORKSPACE_ID, endpoint)
    assert world.secrets.latest(plan.secret_names.primary).value == keys.primary
    assert world.secrets.latest(plan.secret_names.secondary).value == keys.secondary
    written = {call.args[0] for call in world.secrets.calls_to("set_secret")}
    unchanged = {name for name in (plan.secret_names.primary, plan.secret_names.secondary) if name not in written}
    assert all(world.secrets.latest(name).secret.tags["run"] == first.id for name in unchanged)
    assert all(world.secrets.latest(name).secret.tags["run"] == repair.run.id for name in written)
    assert world.deployment().status.phase is Phase.READY


# Verifying: Succeeded only when Azure reports every condition True.


def test_verification_fails_the_run_when_a_condition_stays_false(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL, ticket="CHG-5")
    world.step_until(VERIFY)
    world.ml.set_endpoint_health(WORKSPACE_ID, plan_of(run).endpoint_name, "Offline")

    world.drain()

    failed = world.run(run.id)
    assert statuses(failed)[-2:] == [RunStatus.VERIFYING, RunStatus.FAILED]
    assert failed.error.code == "DeploymentNotHealthy"
    assert "Healthy=False (EndpointOffline" in failed.error.message
    assert [m.body["step"] for m in world.processed].count(VERIFY) == 1
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.error) == (Phase.FAILED, failed.error)
    # The deployment says what failed, not what was still pending.
    assert conditions(world)[ConditionType.HEALTHY] == ("False", "EndpointOffline")
    assert conditions(world)[ConditionType.SUBSCRIPTION_READY] == ("True", "NotRequired")
    assert world.event_types() == ["accepted", "failed"]
    assert world.events.bodies[-1]["data"]["ticket"] == "CHG-5"


def test_a_key_secret_disabled_before_verification_fails_it(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.step_until(VERIFY)
    world.secrets.set_enabled(plan_of(run).secret_names.secondary, False)

    world.drain()

    assert world.run(run.id).error.code == "DeploymentNotHealthy"
    assert conditions(world)[ConditionType.KEYS_STORED] == ("False", "SecretsDisabled")


def test_verification_looks_again_while_the_endpoint_is_settling(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.step_until(VERIFY)
    endpoint = plan_of(run).endpoint_name
    world.ml.set_endpoint_health(WORKSPACE_ID, endpoint, "Reinstating")

    world.step()
    world.step()

    assert status_of(world, run.id) is RunStatus.VERIFYING
    assert [(m.body, m.delay_seconds) for m in world.work.sent] == [
        (
            {
                "run_id": run.id,
                "step": VERIFY,
                "attempt": 2,
                "step_token": world.run(run.id).step_token,
                "waiting_since": world.clock().timestamp(),
            },
            StepTimings().poll_seconds,
        )
    ]
    assert conditions(world)[ConditionType.HEALTHY] == ("False", "EndpointReinstating")
    assert world.event_types() == ["accepted"]

    world.ml.set_endpoint_health(WORKSPACE_ID, endpoint, "Online")
    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert conditions(world)[ConditionType.HEALTHY] == ("True", "Online")
    assert world.deployment().status.phase is Phase.READY


def test_verification_gives_up_on_an_endpoint_that_never_settles():
    world = build_world(timings=StepTimings(max_verify_attempts=3, carry_on_seconds=0))
    run = submit(world, DIRECT_MODEL)
    world.step_until(VERIFY)
    world.ml.set_endpoint_health(WORKSPACE_ID, plan_of(run).endpoint_name, "Reinstating")

    world.drain()

    assert [m.body["attempt"] for m in world.processed if m.body["step"] == VERIFY] == [0, 1, 2, 3]
    failed = world.run(run.id)
    assert failed.error.code == "DeploymentNotHealthy"
    assert "EndpointReinstating" in failed.error.message


# Stale and duplicate deliveries.


def test_a_duplicate_delivery_of_a_finished_step_is_dropped(world):
    run = submit(world)
    world.drain()
    calls_before = len(world.ml.calls)

    world.service.advance(world.processed[0].text)
    world.deliver(WorkItem(run.id, VERIFY))

    assert len(world.ml.calls) == calls_before
    assert world.work.sent == []
    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]


def test_a_message_for_a_later_step_than_the_run_reached_is_dropped(world):
    run = submit(world)

    world.deliver(WorkItem(run.id, STORE_KEYS))

    assert world.ml.calls_to("list_keys") == []
    assert status_of(world, run.id) is RunStatus.SUBSCRIBING


def test_a_message_for_an_unknown_run_is_dropped_with_a_warning(world, caplog):
    world.deliver(WorkItem("no-such-run", PROVISION))

    assert world.ml.calls == []
    assert "no-such-run" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def taken_over(world, run_id: str):
    """Another run has become the deployment's current run (as a take-over after a settle window would)."""
    world.runs.update_deployment(
        world.run(run_id).deployment_id, lambda current: current.changed(at=world.clock(), current_run_id="run-newer")
    )
    return world.deployment()


def test_a_run_that_is_no_longer_current_writes_nothing_to_azure_and_fails_superseded(world):
    run = submit(world)
    before = taken_over(world, run.id)

    world.drain()

    failed = world.run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "RunSuperseded"
    assert [name for name in world.ml.call_names if name.startswith("begin_")] == []
    assert world.deployment() == before
    assert before.status.phase is Phase.PROVISIONING


def test_a_stale_run_that_fails_does_not_fail_the_deployment(world):
    run = submit(world, DIRECT_MODEL)
    before = taken_over(world, run.id)
    world.ml.fail_next("begin_create_endpoint", AzureCallError(400, "BadRequest", "Invalid body."))

    world.drain()

    assert status_of(world, run.id) is RunStatus.FAILED
    assert world.deployment() == before


# Transient and permanent Azure errors.


def test_a_throttled_call_is_retried_after_azures_retry_after(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("begin_create_endpoint", THROTTLED)

    world.step()

    # A 429 spends none of the step's transient attempts: throttling delays a run, never fails it.
    (retry,) = world.work.sent
    assert retry.body == {"run_id": run.id, "step": PROVISION, "attempt": 0, "step_token": run.step_token}
    assert retry.delay_seconds == 17
    assert status_of(world, run.id) is RunStatus.PROVISIONING
    assert world.event_types() == ["accepted"]
    world.drain()
    assert status_of(world, run.id) is RunStatus.SUCCEEDED


@pytest.mark.parametrize(("attempt", "delay"), [(0, 1.0), (3, 8.0), (6, 60.0)])
def test_a_transient_error_without_retry_after_backs_off_exponentially(world, attempt, delay):
    run = submit(world, DIRECT_MODEL)
    world.work.sent.clear()
    world.ml.fail_next("get_endpoint", AzureCallError(503, "ServiceUnavailable", "Busy."))

    world.deliver(WorkItem(run.id, PROVISION, attempt=attempt, step_token=run.step_token))

    assert world.work.sent[0].body["attempt"] == attempt + 1
    assert world.work.sent[0].delay_seconds == delay


def test_a_transient_error_while_polling_keeps_the_operation(world):
    run = submit(world, DIRECT_MODEL)
    world.step()
    world.ml.fail_next("get_operation", AzureCallError(None, "ConnectionReset", "Connection reset by peer."))

    polled = world.step()

    (retry,) = world.work.sent
    assert retry.body == {**polled.body, "attempt": 1}
    assert status_of(world, run.id) is RunStatus.PROVISIONING


def test_a_transient_key_vault_error_is_retried(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.secrets.fail_next("set_secret", AzureCallError(409, "ObjectIsBeingDeleted", "Being deleted."))

    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert [m.body["attempt"] for m in world.processed if m.body["step"] == STORE_KEYS] == [0, 1]


def test_exhausting_the_transient_attempts_fails_the_run_with_azures_code():
    world = build_world(timings=StepTimings(max_transient_attempts=2))
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("begin_create_endpoint", AzureCallError(503, "ServiceUnavailable", "Busy."), times=3)

    world.drain()

    assert [m.body["attempt"] for m in world.processed] == [0, 1, 2]
    failed = world.run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == RunError(code="ServiceUnavailable", message="Busy.")
    assert world.event_types() == ["accepted", "failed"]
    assert world.deployment().status.phase is Phase.FAILED


def test_a_permanent_error_fails_the_run_and_the_deployment_and_announces_it(world):
    run = submit(world, DIRECT_MODEL, ticket="CHG-7")
    denied = AzureCallError(403, "AuthorizationFailed", "The client does not have authorization to perform action.")
    world.ml.fail_next("begin_create_endpoint", denied)

    world.drain()

    failed = world.run(run.id)
    assert failed.status is RunStatus.FAILED
    assert (failed.error.code, failed.error.message) == ("AuthorizationFailed", denied.message)
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.error, deployment.status.current_run_id) == (
        Phase.FAILED,
        failed.error,
        run.id,
    )
    assert deployment.is_gone
    assert world.event_types() == ["accepted", "failed"]
    event = world.events.bodies[-1]
    assert event["data"]["ticket"] == "CHG-7"
    assert event["data"]["error"] == {"code": "AuthorizationFailed", "message": denied.message, "details": []}
    assert world.work.sent == []


def test_a_permanent_key_vault_error_fails_the_run_without_secret_ids(world):
    run = submit(world, DIRECT_MODEL)
    world.secrets.fail_next("set_secret", AzureCallError(403, "Forbidden", "The user does not have secrets set."))

    world.drain()

    failed = world.run(run.id)
    assert (failed.status, failed.error.code, failed.secret_ids) == (RunStatus.FAILED, "Forbidden", None)
    assert world.deployment().status.secret_ids is None


# Operations and resources that end badly.


def test_a_subscription_operation_that_fails_fails_the_run_with_its_error(world):
    run = submit(world)
    world.ml.fail_next_operation = ("MarketplaceSubscriptionPurchaseFailed", "Purchase eligibility check failed.")

    world.drain()

    failed = world.run(run.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == RunError(
        code="MarketplaceSubscriptionPurchaseFailed", message="Purchase eligibility check failed."
    )
    assert RunStatus.PROVISIONING not in statuses(failed)
    assert world.ml.calls_to("begin_create_endpoint") == []
    assert world.event_types() == ["accepted", "failed"]
    assert world.deployment().status.phase is Phase.FAILED


def test_an_endpoint_operation_that_fails_fails_the_run_with_its_error(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next_operation = ("QuotaExceeded", "Not enough quota in eastus2.")

    world.drain()

    failed = world.run(run.id)
    assert failed.error == RunError(code="QuotaExceeded", message="Not enough quota in eastus2.")
    assert failed.secret_ids is None
    assert world.secrets.calls == []


def test_an_operation_that_fails_without_an_error_body_still_explains_itself(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next_operation = (None, None)

    world.drain()

    assert world.run(run.id).error == RunError(code="OperationFailed", message="Azure reported failure.")


def test_a_subscription_that_ends_unsubscribed_fails_the_run(world):
    run = submit(world)
    world.ml.subscription_outcome = "Suspended"

    world.drain()

    failed = world.run(run.id)
    assert failed.error.code == "MarketplaceSubscriptionNotActive"
    assert f"'{SUBSCRIPTION_NAME}' finished creating but is Suspended" in failed.error.message


def test_a_subscription_that_vanishes_after_its_operation_fails_the_run(world):
    run = submit(world)
    world.step()
    world.ml.subscriptions.clear()
    world.ml.polls_before_done = 0

    world.drain()

    assert "is missing" in world.run(run.id).error.message


def test_an_endpoint_that_ends_failed_after_its_operation_fails_the_run(world):
    world.ml.endpoint_outcome = "Canceled"
    run = submit(world, DIRECT_MODEL)

    world.drain()

    failed = world.run(run.id)
    assert failed.error.code == "EndpointProvisioningFailed"
    assert "ended Canceled" in failed.error.message


def test_an_endpoint_that_disappears_before_its_keys_are_stored_fails_the_run(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.step_until(STORE_KEYS)
    world.ml.endpoints.clear()

    world.drain()

    failed = world.run(run.id)
    assert failed.error.code == "EndpointNotFound"
    assert RunStatus.SUCCEEDED not in statuses(failed)


def test_failing_a_run_another_worker_already_finished_keeps_the_outcome(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("begin_create_endpoint", AzureCallError(400, "BadRequest", "Invalid body."))
    earlier = RunError(code="QuotaExceeded", message="Reported by another worker.")

    def another_worker_fails_it_first():
        world.runs.update(run.id, lambda current: current.transition(RunStatus.FAILED, at=world.clock(), error=earlier))

    world.runs.before_next("save", another_worker_fails_it_first)

    world.drain()

    final = world.run(run.id)
    assert final.error == earlier
    assert statuses(final).count(RunStatus.FAILED) == 1
    assert world.runs.conflicts == 1
    assert world.deployment().status.error == earlier


def test_a_step_whose_save_loses_a_race_is_reapplied_on_the_latest_record(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.step_until(STORE_KEYS)

    def touch():
        # A concurrent writer re-saves the record unchanged in content but with a fresh ETag.
        stored = world.runs.get(run.id)
        world.runs.save(stored.run, stored.etag)

    world.runs.before_next("save", touch)

    world.drain()

    assert status_of(world, run.id) is RunStatus.SUCCEEDED
    assert world.runs.conflicts == 1


def test_an_unexpected_error_is_left_to_the_host_to_retry(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("get_endpoint", RuntimeError("bug"))

    with pytest.raises(RuntimeError):
        world.step()

    assert status_of(world, run.id) is RunStatus.PROVISIONING


# Pacing ARM writes.


def test_a_write_step_waits_for_its_slot_instead_of_sending_a_write_arm_would_refuse():
    now = [0.0]
    pacer = WritePacer(reserve=2, refill_per_second=0.5, monotonic=lambda: now[0])
    world = build_world(pacer=pacer)
    pacer.observe(SUBSCRIPTION, 2)  # what ARM's last answer left: only the reserve
    run = submit(world, DIRECT_MODEL)

    world.step()

    assert world.ml.calls_to("begin_create_endpoint") == []
    (paced,) = world.work.sent
    assert paced.body == {"run_id": run.id, "step": PROVISION, "attempt": 0, "step_token": run.step_token}
    assert paced.delay_seconds == 2.0
    while world.work.sent:
        now[0] += world.work.sent[0].delay_seconds
        world.step()
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1
    assert status_of(world, run.id) is RunStatus.SUCCEEDED


def test_every_write_of_a_deployment_asks_the_pacer():
    now = [0.0]
    pacer = WritePacer(reserve=0, refill_per_second=1.0, monotonic=lambda: now[0])
    world = build_world(pacer=pacer)
    pacer.observe(SUBSCRIPTION, 0)
    run = submit(world)

    while world.work.sent:
        now[0] += world.work.sent[0].delay_seconds
        pacer.observe(SUBSCRIPTION, 0)  # other clients keep the bucket empty
        world.step()

    # Subscription PUT, endpoint PUT and listKeys (a POST: a write to ARM) each waited for a slot first.
    paced = [m.body["step"] for m in world.processed if "operation_url" not in m.body and m.delay_seconds > 0]
    assert paced == [SUBSCRIBE, PROVISION, STORE_KEYS]
    assert status_of(world, run.id) is RunStatus.SUCCEEDED
