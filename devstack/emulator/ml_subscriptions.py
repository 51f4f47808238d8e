"""marketplaceSubscriptions: subscribing a project to a partner model's offer (LRO), get, list, delete (LRO).

One subscription per offer per project; a model sold directly by Azure has no offer. Subscribing again to a
suspended, unsubscribed or failed subscription buys the offer again, which heals the endpoints that depend on it.
"""

from __future__ import annotations

import re

from aiohttp import web

from devstack.emulator import lifecycle, lro
from devstack.emulator.arm import ArmRoute
from devstack.emulator.catalog import CatalogModel
from devstack.emulator.errors import ArmError, request_id_headers, user_error
from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.ml_bodies import subscription_json, system_data, touched
from devstack.emulator.ml_common import (
    ACTIONS,
    SUBSCRIPTION_API_VERSIONS,
    MlHandlers,
    not_found,
    workspace_route,
)
from devstack.emulator.paging import page
from devstack.emulator.resources import MarketplaceSubscription, workspace_key
from devstack.emulator.scenario import WorkspaceSpec

SUBSCRIPTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")
_ACTION = f"{ACTIONS}/marketplaceSubscriptions"
_TYPE = "workspaces/marketplaceSubscriptions"
SUBSCRIPTION = "marketplaceSubscription"


class MarketplaceSubscriptions(MlHandlers):
    def _subscription(self, workspace: WorkspaceSpec, params: dict[str, str]) -> MarketplaceSubscription:
        key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
        found = self.state.subscriptions.get((key, params["name"].lower()))
        if found is None:
            raise not_found(params, f"/marketplaceSubscriptions/{params['name']}")
        return found

    async def put_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await self.request_body(request, SUBSCRIPTION)
        name = params["name"]
        if not SUBSCRIPTION_NAME.fullmatch(name):
            raise user_error(
                400,
                f"Marketplace subscription name '{name}' is invalid. It must start with a letter or digit and "
                "contain only letters, digits, '-' and '_', at most 255 characters.",
                "InvalidMarketplaceSubscriptionName",
            )
        model_id = (body.get("properties") or {}).get("modelId")
        if not model_id:
            raise user_error(400, "The Marketplace subscription needs properties.modelId.", "MissingModelId")
        principal = request[PRINCIPAL_KEY]
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            model = self.model_for(model_id, workspace)
            if not model.requires_marketplace_subscription:
                raise user_error(
                    400,
                    "Error occurred when subscribing to Marketplace: Marketplace Subscription purchase eligibility "
                    f"check failed. Model '{model.model_id}' is sold directly by Azure and has no Marketplace offer.",
                    "MarketplaceSubscriptionNotRequired",
                )
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            existing = state.subscriptions.get((key, name.lower()))
            if existing is not None:
                return self._resubscribe(request, existing, model)
            other = lifecycle.subscription_for_model(state, key, model.model_id)
            if other is not None:
                raise user_error(
                    409,
                    f"This project is already subscribed to the offer of model '{model.model_id}' through "
                    f"Marketplace subscription '{other.name}'.",
                    "MarketplaceSubscriptionAlreadyExists",
                )
            subscription = MarketplaceSubscription(
                subscription_id=workspace.subscription_id,
                resource_group=workspace.resource_group,
                workspace=workspace.name,
                name=name,
                model_id=model_id,
                marketplace_plan=model.marketplace_plan(),
                system_data=system_data(principal, state.clock()),
            )
            state.subscriptions[(key, name.lower())] = subscription
            return self._start_subscription_create(request, subscription, workspace.location)

    def _start_subscription_create(
        self, request: web.Request, subscription: MarketplaceSubscription, location: str
    ) -> web.Response:
        state = self.state
        subscription.status = "PendingFulfillmentStart"
        subscription.provisioning_state = "Creating"
        operation = lro.start_operation(
            state, action="create", resource_type=lifecycle.SUBSCRIPTIONS, target=subscription, location=location
        )
        state.commit()
        return self.respond(
            request,
            SUBSCRIPTION,
            subscription_json(subscription),
            201,
            self._lro_headers(request, operation, with_location=False),
        )

    def _resubscribe(
        self, request: web.Request, subscription: MarketplaceSubscription, model: CatalogModel
    ) -> web.Response:
        state = self.state
        if model.model_id.lower() != subscription.model_id.lower():
            raise user_error(
                400,
                f"The model of Marketplace subscription '{subscription.name}' cannot be changed from "
                f"'{subscription.model_id}' to '{model.model_id}'.",
                "ModelIdCannotBeUpdated",
            )
        pending = lifecycle.pending_operation(state, subscription.key, lifecycle.SUBSCRIPTIONS, subscription.name)
        if pending is not None and pending.action == "delete":
            raise ArmError(
                409,
                "Conflict",
                f"Marketplace subscription '{subscription.name}' is being deleted; retry once the deletion completes.",
            )
        if pending is not None:
            return self.respond(
                request,
                SUBSCRIPTION,
                subscription_json(subscription),
                201,
                self._lro_headers(request, pending, with_location=False),
            )
        subscription.system_data = touched(subscription.system_data, request[PRINCIPAL_KEY], state.clock())
        if subscription.healthy:
            state.commit()
            return self.respond(request, SUBSCRIPTION, subscription_json(subscription))
        # Suspended, Unsubscribed or failed: subscribing again buys the offer again.
        workspace = self.workspace(
            {
                "subscriptionId": subscription.subscription_id,
                "resourceGroupName": subscription.resource_group,
                "workspaceName": subscription.workspace,
            }
        )
        return self._start_subscription_create(request, subscription, workspace.location)

    async def get_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            return self.respond(
                request, SUBSCRIPTION, subscription_json(self._subscription(self.workspace(params), params))
            )

    async def list_subscriptions(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            # Filtered before sorting: a list reads one workspace, however many the emulator holds.
            owned = sorted(item for item in self.state.subscriptions.items() if item[0][0] == key)
            items = [subscription_json(subscription) for _, subscription in owned]
        return self.respond(request, f"{SUBSCRIPTION}List", page(request, items, self.state.scenario.page_size))

    async def delete_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            subscription = state.subscriptions.get((key, params["name"].lower()))
            if subscription is None:
                return web.Response(status=204, headers=request_id_headers())
            operation = lifecycle.pending_operation(state, key, lifecycle.SUBSCRIPTIONS, subscription.name)
            if operation is None or operation.action != "delete":
                lifecycle.cancel_pending(state, key, lifecycle.SUBSCRIPTIONS, subscription.name)
                subscription.provisioning_state = "Deleting"
                operation = lro.start_operation(
                    state,
                    action="delete",
                    resource_type=lifecycle.SUBSCRIPTIONS,
                    target=subscription,
                    location=workspace.location,
                )
                state.commit()
            headers = self._lro_headers(request, operation, with_location=True)
        return web.Response(status=202, headers={**request_id_headers(), **headers})

    def routes(self) -> list[ArmRoute]:
        item, versions = "/marketplaceSubscriptions/{name}", SUBSCRIPTION_API_VERSIONS
        return [
            workspace_route(
                "GET", "/marketplaceSubscriptions", self.list_subscriptions, f"{_ACTION}/read", _TYPE, versions=versions
            ),
            workspace_route("GET", item, self.get_subscription, f"{_ACTION}/read", _TYPE, versions=versions),
            workspace_route("PUT", item, self.put_subscription, f"{_ACTION}/write", _TYPE, versions=versions),
            workspace_route("DELETE", item, self.delete_subscription, f"{_ACTION}/delete", _TYPE, versions=versions),
        ]
