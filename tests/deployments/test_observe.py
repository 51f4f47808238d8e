"""Observing a deployment: what Azure holds, read fresh and turned into its four conditions."""

import pytest

from shared.deployment import ConditionType
from shared.deployments.observe import observe
from shared.plan import plan_for

from .fakes import START, FakeMachineLearning, FakeSecretStore
from .scenario import CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, WORKSPACE_ID, request

SUBSCRIPTION_NAME = "Cohere-command-r-08-2024-subscription"


class Azure:
    """An endpoint of `model` with both key secrets stored, and (for a Marketplace model) its subscription."""

    def __init__(self, model: str = MARKETPLACE_MODEL) -> None:
        self.plan = plan_for(request(model), CATALOG)
        self.ml, self.secrets = FakeMachineLearning(), FakeSecretStore()
        self.ml.add_endpoint(WORKSPACE_ID, self.plan.endpoint_name, model)
        if self.plan.subscription_name:
            self.ml.add_subscription(WORKSPACE_ID, self.plan.subscription_name, model, status="Subscribed")
        for name in (self.plan.secret_names.primary, self.plan.secret_names.secondary):
            self.secrets.set_secret(name, "value", content_type="text/plain", tags={})
        self.secrets.calls.clear()

    def observe(self, **options):
        return observe(self.plan, machine_learning=self.ml, secrets=self.secrets, at=START, **options)

    def condition(self, kind: ConditionType, **options) -> tuple[str, str]:
        (found,) = [item for item in self.observe(**options).conditions if item.type is kind]
        return found.status, found.reason

    def endpoint_is(self, *, provisioning: str | None = None, state: str | None = "keep") -> None:
        if provisioning is not None:
            self.ml.set_endpoint_state(WORKSPACE_ID, self.plan.endpoint_name, provisioning)
        if state != "keep":
            self.ml.set_endpoint_health(WORKSPACE_ID, self.plan.endpoint_name, state)


@pytest.mark.parametrize("model", [MARKETPLACE_MODEL, DIRECT_MODEL])
def test_a_whole_deployment_is_all_true_and_not_settling(model):
    azure = Azure(model)

    seen = azure.observe()

    assert [(item.type, item.status) for item in seen.conditions] == [(kind, "True") for kind in ConditionType]
    assert seen.all_true
    assert not seen.settling
    assert (seen.failing(), seen.summary()) == ([], "")
    assert {item.last_transition_time for item in seen.conditions} == {START}


def test_observing_only_reads():
    azure = Azure()
    azure.ml.calls.clear()

    seen = azure.observe()

    assert azure.ml.call_names == ["get_endpoint", "get_subscription"]
    assert azure.secrets.call_names == ["get_secret", "get_secret"]
    assert seen.endpoint == azure.ml.endpoint(WORKSPACE_ID, azure.plan.endpoint_name)
    assert seen.subscription == azure.ml.subscription(WORKSPACE_ID, SUBSCRIPTION_NAME)
    assert [secret.name for secret in seen.secrets] == [
        azure.plan.secret_names.primary,
        azure.plan.secret_names.secondary,
    ]


# SubscriptionReady.


def test_a_model_sold_directly_needs_no_subscription_and_none_is_read():
    azure = Azure(DIRECT_MODEL)

    assert azure.condition(ConditionType.SUBSCRIPTION_READY) == ("True", "NotRequired")
    assert azure.ml.calls_to("get_subscription") == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Suspended", "SubscriptionSuspended"),
        ("Unsubscribed", "SubscriptionUnsubscribed"),
        (None, "SubscriptionUnknown"),
    ],
)
def test_a_subscription_that_is_not_subscribed_is_not_ready(status, reason):
    azure = Azure()
    azure.ml.add_subscription(WORKSPACE_ID, SUBSCRIPTION_NAME, MARKETPLACE_MODEL, status=status)

    assert azure.condition(ConditionType.SUBSCRIPTION_READY) == ("False", reason)
    assert azure.condition(ConditionType.HEALTHY) == ("False", "SubscriptionInactive")


def test_a_missing_subscription_is_not_ready_and_makes_the_endpoint_unhealthy():
    azure = Azure()
    azure.ml.remove_subscription(WORKSPACE_ID, SUBSCRIPTION_NAME)

    seen = azure.observe()

    assert [(item.type, item.status, item.reason) for item in seen.failing()] == [
        (ConditionType.SUBSCRIPTION_READY, "False", "SubscriptionMissing"),
        (ConditionType.HEALTHY, "False", "SubscriptionMissing"),
    ]
    assert SUBSCRIPTION_NAME in seen.summary()
    # The endpoint itself is still provisioned and Online: nothing to wait for.
    assert not seen.settling


# EndpointReady.


@pytest.mark.parametrize(
    ("provisioning", "expected"),
    [
        ("Succeeded", ("True", "Provisioned")),
        ("Creating", ("Unknown", "Provisioning")),
        ("Updating", ("Unknown", "Provisioning")),
        ("Failed", ("False", "ProvisioningFailed")),
        ("Canceled", ("False", "ProvisioningCanceled")),
    ],
)
def test_endpoint_ready_follows_the_provisioning_state(provisioning, expected):
    azure = Azure(DIRECT_MODEL)
    azure.endpoint_is(provisioning=provisioning)

    assert azure.condition(ConditionType.ENDPOINT_READY) == expected


def test_a_missing_endpoint_is_neither_ready_nor_healthy_and_nothing_settles():
    azure = Azure(DIRECT_MODEL)
    azure.ml.endpoints.clear()

    seen = azure.observe()

    assert azure.condition(ConditionType.ENDPOINT_READY) == ("False", "EndpointMissing")
    assert azure.condition(ConditionType.HEALTHY) == ("False", "EndpointMissing")
    assert seen.endpoint is None
    assert not seen.settling


# KeysStored.


def test_a_missing_secret_is_named():
    azure = Azure(DIRECT_MODEL)
    azure.secrets.delete_secret(azure.plan.secret_names.secondary)

    seen = azure.observe()

    (keys,) = [item for item in seen.conditions if item.type is ConditionType.KEYS_STORED]
    assert (keys.status, keys.reason) == ("False", "SecretsMissing")
    assert azure.plan.secret_names.secondary in keys.message
    assert azure.plan.secret_names.primary not in keys.message
    assert seen.secrets[1] is None


def test_a_disabled_secret_is_not_stored():
    azure = Azure(DIRECT_MODEL)
    azure.secrets.set_enabled(azure.plan.secret_names.primary, False)

    assert azure.condition(ConditionType.KEYS_STORED) == ("False", "SecretsDisabled")


def test_missing_wins_over_disabled():
    azure = Azure(DIRECT_MODEL)
    azure.secrets.set_enabled(azure.plan.secret_names.primary, False)
    azure.secrets.delete_secret(azure.plan.secret_names.secondary)

    assert azure.condition(ConditionType.KEYS_STORED) == ("False", "SecretsMissing")


# Healthy.


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Online", ("True", "Online")),
        ("Suspended", ("False", "EndpointSuspended")),
        ("Offline", ("False", "EndpointOffline")),
        (None, ("False", "EndpointUnknown")),
    ],
)
def test_healthy_follows_the_endpoint_state(state, expected):
    azure = Azure(DIRECT_MODEL)
    azure.endpoint_is(state=state)

    assert azure.condition(ConditionType.HEALTHY) == expected


def test_the_healthy_states_are_configurable_and_compared_case_insensitively():
    azure = Azure(DIRECT_MODEL)
    azure.endpoint_is(state="Reinstating")

    assert azure.condition(ConditionType.HEALTHY) == ("False", "EndpointReinstating")
    assert azure.condition(ConditionType.HEALTHY, healthy_states={"ONLINE", "reinstating"}) == ("True", "Reinstating")


# Settling.


@pytest.mark.parametrize(
    ("provisioning", "state", "settling"),
    [
        ("Succeeded", "Online", False),
        ("Succeeded", "Reinstating", True),
        ("Succeeded", "Suspending", True),
        ("Succeeded", None, True),
        ("Succeeded", "Suspended", False),
        ("Succeeded", "Offline", False),
        ("Creating", "Creating", True),
        ("Updating", "Online", True),
        ("Failed", "CreationFailed", False),
    ],
)
def test_only_an_endpoint_azure_is_still_moving_is_settling(provisioning, state, settling):
    azure = Azure(DIRECT_MODEL)
    azure.endpoint_is(provisioning=provisioning, state=state)

    assert azure.observe().settling is settling


def test_the_summary_names_each_failing_condition_with_its_reason():
    azure = Azure(DIRECT_MODEL)
    azure.endpoint_is(state="Offline")
    azure.secrets.set_enabled(azure.plan.secret_names.primary, False)

    summary = azure.observe().summary()

    assert summary.startswith("KeysStored=False (SecretsDisabled: ")
    assert "; Healthy=False (EndpointOffline: " in summary
    assert "EndpointReady" not in summary
