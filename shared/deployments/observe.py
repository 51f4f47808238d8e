"""What Azure holds for a deployment, read fresh and turned into its four conditions.

Reads only: the endpoint, the Marketplace subscription (partner and community models), and the two key secrets'
properties. Intake uses it before answering "already Ready", the workflow's last step before reporting Succeeded,
and hygiene when it scans. "Unhealthy" has no wire value (azure-facts §1), so Healthy is False when the subscription
is missing or not Subscribed, or when endpointState is not one of the healthy states.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from shared.deployment import Condition, ConditionType, condition
from shared.plan import DeploymentPlan
from shared.ports import Endpoint, MachineLearningPort, MarketplaceSubscription, SecretStorePort, StoredSecret

DEFAULT_HEALTHY_STATES = frozenset({"online"})
# Endpoint states that settle by themselves: worth waiting for before judging health.
SETTLING_STATES = frozenset({"creating", "reinstating", "unknown", "updating", "suspending"})
PROVISIONING_IN_PROGRESS = frozenset({"creating", "updating", "accepted", "running", "inprogress"})


@dataclass(frozen=True)
class Observation:
    endpoint: Endpoint | None
    subscription: MarketplaceSubscription | None
    secrets: tuple[StoredSecret | None, StoredSecret | None]
    conditions: tuple[Condition, ...]

    @property
    def all_true(self) -> bool:
        return all(item.is_true for item in self.conditions)

    @property
    def settling(self) -> bool:
        """Azure is still moving the endpoint (creating, reinstating): look again before judging."""
        if self.endpoint is None:
            return False
        return (
            self.endpoint.provisioning_state.lower() in PROVISIONING_IN_PROGRESS
            or (self.endpoint.endpoint_state or "unknown").lower() in SETTLING_STATES
        )

    def failing(self) -> list[Condition]:
        return [item for item in self.conditions if not item.is_true]

    def summary(self) -> str:
        return "; ".join(f"{item.type}={item.status} ({item.reason}: {item.message})" for item in self.failing())


def observe(
    plan: DeploymentPlan,
    *,
    machine_learning: MachineLearningPort,
    secrets: SecretStorePort,
    at: datetime,
    healthy_states: Collection[str] = DEFAULT_HEALTHY_STATES,
) -> Observation:
    workspace_id = plan.workspace.resource_id
    endpoint = machine_learning.get_endpoint(workspace_id, plan.endpoint_name)
    subscription = (
        machine_learning.get_subscription(workspace_id, plan.subscription_name) if plan.subscription_name else None
    )
    stored = (secrets.get_secret(plan.secret_names.primary), secrets.get_secret(plan.secret_names.secondary))
    healthy = {state.lower() for state in healthy_states}
    conditions = (
        _subscription_ready(plan, subscription, at),
        _endpoint_ready(plan, endpoint, at),
        _keys_stored(plan, stored, at),
        _healthy(plan, endpoint, subscription, healthy, at),
    )
    return Observation(endpoint, subscription, stored, conditions)


def _subscription_ready(plan: DeploymentPlan, subscription: MarketplaceSubscription | None, at: datetime) -> Condition:
    kind = ConditionType.SUBSCRIPTION_READY
    if plan.subscription_name is None:
        return condition(kind, "True", "NotRequired", "The model is sold directly by Azure.", at=at)
    if subscription is None:
        return condition(
            kind,
            "False",
            "SubscriptionMissing",
            f"Marketplace subscription '{plan.subscription_name}' does not exist.",
            at=at,
        )
    status = subscription.status or "Unknown"
    if status.lower() == "subscribed":
        return condition(
            kind, "True", "Subscribed", f"Marketplace subscription '{subscription.name}' is Subscribed.", at=at
        )
    return condition(
        kind, "False", f"Subscription{status}", f"Marketplace subscription '{subscription.name}' is {status}.", at=at
    )


def _endpoint_ready(plan: DeploymentPlan, endpoint: Endpoint | None, at: datetime) -> Condition:
    kind = ConditionType.ENDPOINT_READY
    if endpoint is None:
        return condition(kind, "False", "EndpointMissing", f"Endpoint '{plan.endpoint_name}' does not exist.", at=at)
    state = endpoint.provisioning_state
    if state.lower() == "succeeded":
        return condition(kind, "True", "Provisioned", f"Endpoint '{endpoint.name}' is provisioned.", at=at)
    if state.lower() in PROVISIONING_IN_PROGRESS:
        return condition(kind, "Unknown", "Provisioning", f"Endpoint '{endpoint.name}' is {state}.", at=at)
    return condition(
        kind, "False", f"Provisioning{state}", f"Endpoint '{endpoint.name}' provisioning is {state}.", at=at
    )


def _keys_stored(
    plan: DeploymentPlan, stored: tuple[StoredSecret | None, StoredSecret | None], at: datetime
) -> Condition:
    kind = ConditionType.KEYS_STORED
    names = (plan.secret_names.primary, plan.secret_names.secondary)
    missing = [name for name, secret in zip(names, stored, strict=True) if secret is None]
    if missing:
        return condition(kind, "False", "SecretsMissing", f"Key Vault has no secret {', '.join(missing)}.", at=at)
    disabled = [secret.name for secret in stored if secret is not None and not secret.enabled]
    if disabled:
        return condition(
            kind, "False", "SecretsDisabled", f"Key Vault secret(s) {', '.join(disabled)} are disabled.", at=at
        )
    return condition(kind, "True", "Stored", "Both endpoint keys are in Key Vault.", at=at)


def _healthy(
    plan: DeploymentPlan,
    endpoint: Endpoint | None,
    subscription: MarketplaceSubscription | None,
    healthy_states: set[str],
    at: datetime,
) -> Condition:
    kind = ConditionType.HEALTHY
    if plan.subscription_name is not None and subscription is None:
        return condition(
            kind,
            "False",
            "SubscriptionMissing",
            f"Marketplace subscription '{plan.subscription_name}' is gone, so the endpoint is unusable.",
            at=at,
        )
    if subscription is not None and (subscription.status or "").lower() != "subscribed":
        return condition(
            kind,
            "False",
            "SubscriptionInactive",
            f"Marketplace subscription '{subscription.name}' is {subscription.status}.",
            at=at,
        )
    if endpoint is None:
        return condition(kind, "False", "EndpointMissing", f"Endpoint '{plan.endpoint_name}' does not exist.", at=at)
    state = endpoint.endpoint_state or "Unknown"
    if state.lower() in healthy_states:
        return condition(kind, "True", state, f"Endpoint '{endpoint.name}' is {state}.", at=at)
    return condition(kind, "False", f"Endpoint{state}", f"Endpoint '{endpoint.name}' is {state}.", at=at)
