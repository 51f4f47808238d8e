"""How endpoints and Marketplace subscriptions move between states: operations completing or failing, and the
endpointState an endpoint shows, which follows the health of its Marketplace subscription.

The docs only say an endpoint whose subscription is deleted becomes "Unhealthy" (a portal word, no API value);
the emulator shows `scenario.unhealthyEndpointState` (default Suspended) while the subscription is missing, deleting,
suspended or unsubscribed, and Online again once the project is subscribed again.
"""

from __future__ import annotations

from devstack.emulator.lro import due_operations
from devstack.emulator.resources import Endpoint, MarketplaceSubscription, Operation, WorkspaceKey
from devstack.emulator.state import EmulatorState

ENDPOINTS = "serverlessEndpoints"
SUBSCRIPTIONS = "marketplaceSubscriptions"


def subscription_for_model(state: EmulatorState, key: WorkspaceKey, model_id: str) -> MarketplaceSubscription | None:
    """The project's subscription to a model's offer, preferring a healthy one.

    A project subscribes once per offer (seed), so a subscription made for one model of an offer serves every
    model of that offer.
    """
    model = state.catalog.get(model_id)
    offer = (model.publisher_id.lower(), model.offer_id.lower()) if model else None

    def serves(subscription: MarketplaceSubscription) -> bool:
        plan = subscription.marketplace_plan
        same_offer = offer == (plan.get("publisherId", "").lower(), plan.get("offerId", "").lower())
        return subscription.model_id.lower() == model_id.lower() or same_offer

    candidates = [
        subscription
        for subscription in state.subscriptions.values()
        if subscription.key == key and serves(subscription)
    ]
    return next((item for item in candidates if item.healthy), candidates[0] if candidates else None)


def endpoint_state(state: EmulatorState, endpoint: Endpoint) -> str:
    if endpoint.provisioning_state in {"Creating", "Deleting"}:
        return endpoint.provisioning_state
    if endpoint.provisioning_state == "Failed":
        return "DeletionFailed" if endpoint.failed_operation == "delete" else "CreationFailed"
    if endpoint.endpoint_state_override:
        return endpoint.endpoint_state_override
    if endpoint.requires_marketplace_subscription:
        subscription = subscription_for_model(state, endpoint.key, endpoint.model_id)
        if subscription is None or not subscription.healthy:
            return state.scenario.unhealthy_endpoint_state
    return "Online"


def current_marketplace_subscription_id(state: EmulatorState, endpoint: Endpoint) -> str | None:
    """The subscription an endpoint bills through: a live one for its model, else the (gone) one it was created on."""
    if not endpoint.requires_marketplace_subscription:
        return None
    subscription = subscription_for_model(state, endpoint.key, endpoint.model_id)
    if subscription is not None:
        endpoint.marketplace_subscription_id = subscription.resource_id
    return endpoint.marketplace_subscription_id


REGENERATE = "regenerateKeys"
# Keys chosen by an asynchronous regenerateKeys, by operation id, until the operation completes (memory only).
_PENDING_KEYS = "pending-keys"


def remember_key(state: EmulatorState, operation: Operation, key_type: str, value: str) -> None:
    state.extensions.setdefault(_PENDING_KEYS, {})[operation.id] = (key_type, value)


def set_key(endpoint: Endpoint, key_type: str, value: str) -> None:
    if key_type == "Primary":
        endpoint.primary_key = value
    else:
        endpoint.secondary_key = value


def _target(state: EmulatorState, operation: Operation) -> Endpoint | MarketplaceSubscription | None:
    store = state.endpoints if operation.resource_type == ENDPOINTS else state.subscriptions
    return store.get((operation.key, operation.resource_name.lower()))


def complete(state: EmulatorState, operation: Operation) -> None:
    with state.lock:
        if operation.done:
            return
        operation.status = "Succeeded"
        operation.end_time = state.clock()
        target = _target(state, operation)
        if target is None:
            return
        if operation.action == REGENERATE:
            pending = state.extensions.get(_PENDING_KEYS, {}).pop(operation.id, None)
            if pending is not None and isinstance(target, Endpoint):
                set_key(target, *pending)
            return
        if operation.action == "delete":
            store = state.endpoints if operation.resource_type == ENDPOINTS else state.subscriptions
            del store[(operation.key, operation.resource_name.lower())]
            return
        target.provisioning_state = "Succeeded"
        if isinstance(target, MarketplaceSubscription):
            target.status = "Subscribed"


def fail(state: EmulatorState, operation: Operation, code: str, message: str) -> None:
    with state.lock:
        if operation.done:
            return
        operation.status = "Failed"
        operation.end_time = state.clock()
        operation.error = {"code": code, "message": message}
        target = _target(state, operation)
        if operation.action == REGENERATE:
            state.extensions.get(_PENDING_KEYS, {}).pop(operation.id, None)
            return
        if target is None:
            return
        target.provisioning_state = "Failed"
        if isinstance(target, Endpoint):
            target.failed_operation = operation.action
        elif operation.action == "create":
            target.status = "Unsubscribed"


def cancel_pending(state: EmulatorState, key: WorkspaceKey, resource_type: str, name: str) -> None:
    """Mark the resource's in-progress operations Canceled (a delete superseding a create)."""
    for operation in state.operations.values():
        if (
            not operation.done
            and operation.key == key
            and operation.resource_type == resource_type
            and operation.resource_name.lower() == name.lower()
        ):
            operation.status = "Canceled"
            operation.end_time = state.clock()


def pending_operation(state: EmulatorState, key: WorkspaceKey, resource_type: str, name: str) -> Operation | None:
    """The resource's create or delete in progress (a key regeneration does not count)."""
    return next(
        (
            operation
            for operation in state.operations.values()
            if not operation.done
            and operation.action != REGENERATE
            and operation.key == key
            and operation.resource_type == resource_type
            and operation.resource_name.lower() == name.lower()
        ),
        None,
    )


def settle(state: EmulatorState) -> None:
    """Complete every operation whose time is up; called before any read of ML state."""
    with state.lock:
        due = due_operations(state)
        for operation in due:
            complete(state, operation)
        if due:
            state.commit()
