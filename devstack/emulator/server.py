"""The emulator's listeners: one HTTPS port for ARM, managed identity and the admin API, one more per Key Vault
(azure-keyvault-secrets needs each vault at the root of its own host:port), and one for the Event Grid topic."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from aiohttp import web

from devstack.emulator.admin import register_admin_routes
from devstack.emulator.arm import ArmRouter, arm_dispatcher, arm_gate_middleware
from devstack.emulator.authorization import register_authorization_routes
from devstack.emulator.entra import DEMO_PRINCIPALS, entra_env, register_entra_routes
from devstack.emulator.event_grid import PublishedEvents, create_topic_app
from devstack.emulator.identity import TOKEN_PATH, register_identity_routes
from devstack.emulator.keyvault import create_vault_app
from devstack.emulator.middleware import ADMIN_PREFIX, common_middlewares
from devstack.emulator.ml import MachineLearning
from devstack.emulator.rbac import Authorizer
from devstack.emulator.state import EmulatorState
from devstack.emulator.tls import TlsFiles, server_ssl_context
from devstack.ports import LOOPBACK


def create_arm_app(state: EmulatorState) -> web.Application:
    router = ArmRouter()
    machine_learning = MachineLearning(state)
    machine_learning.register(router)
    app = web.Application(
        middlewares=[*common_middlewares(state, "arm"), arm_gate_middleware(state, router, Authorizer(state))]
    )
    register_admin_routes(app, state)
    register_identity_routes(app, state)
    # Microsoft.Authorization has its own routes; they must come before the ARM catch-all below.
    register_authorization_routes(app, state)
    dispatch = arm_dispatcher(router, machine_learning.location_of)
    app.router.add_route("*", "/subscriptions/{tail:.*}", dispatch)
    app.router.add_route("*", "/providers/{tail:.*}", dispatch)
    # Entra ID's /{tenant}/... paths, after the ARM routes so that no ARM path is taken for a tenant.
    register_entra_routes(app, state)
    return app


def _bound_socket(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    return listener


@dataclass
class EmulatorServer:
    state: EmulatorState
    tls: TlsFiles
    host: str = LOOPBACK
    port: int = 0
    # Vault name -> the port to bind it to (others get a free port), so a vault's URL can outlive a restart.
    fixed_vault_ports: dict[str, int] = field(default_factory=dict)
    # The Event Grid topic's port (0: a free one), so EVENT_GRID_TOPIC_ENDPOINT can outlive a restart too.
    fixed_topic_port: int = 0
    arm_port: int = 0
    vault_ports: dict[str, int] = field(default_factory=dict)
    topic_port: int = 0
    published_events: PublishedEvents = field(default_factory=PublishedEvents)
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def start(self) -> None:
        unknown = sorted(set(self.fixed_vault_ports) - {vault.name for vault in self.state.scenario.vaults})
        if unknown:
            raise ValueError(f"no vault named {', '.join(unknown)} in the scenario")
        ssl_context = server_ssl_context(self.tls)
        self.arm_port = await self._serve(create_arm_app(self.state), self.port, ssl_context)
        for vault in self.state.scenario.vaults:
            middlewares = common_middlewares(self.state, f"vault:{vault.name}")
            app = create_vault_app(self.state, vault, middlewares=middlewares)
            self.vault_ports[vault.name] = await self._serve(
                app, self.fixed_vault_ports.get(vault.name, 0), ssl_context
            )
        topic = create_topic_app(
            self.state, self.published_events, middlewares=tuple(common_middlewares(self.state, "eventgrid"))
        )
        self.topic_port = await self._serve(topic, self.fixed_topic_port, ssl_context)

    async def _serve(self, app: web.Application, port: int, ssl_context) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        listener = _bound_socket(self.host, port)
        await web.SockSite(runner, listener, ssl_context=ssl_context).start()
        self._runners.append(runner)
        return listener.getsockname()[1]

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    @property
    def arm_url(self) -> str:
        return f"https://{self.host}:{self.arm_port}"

    @property
    def vault_urls(self) -> dict[str, str]:
        return {name: f"https://{self.host}:{port}/" for name, port in self.vault_ports.items()}

    @property
    def topic_endpoint(self) -> str:
        return f"https://{self.host}:{self.topic_port}/api/events"

    def env(self) -> dict[str, str]:
        """The env-file variables: sourcing them points the Azure SDKs at the emulator as the broker identity."""
        scenario = self.state.scenario
        env = {
            "AZUREML_DEV_URL_MFE": self.arm_url,
            "AZURE_RESOURCE_MANAGER_URL": self.arm_url,
            "REQUESTS_CA_BUNDLE": str(self.tls.ca_cert),
            "IDENTITY_ENDPOINT": f"{self.arm_url}{TOKEN_PATH}",
            "IDENTITY_HEADER": scenario.identity_header,
            "EVENT_GRID_TOPIC_ENDPOINT": self.topic_endpoint,
            "EMULATOR_ADMIN_URL": f"{self.arm_url}{ADMIN_PREFIX}",
            "AZURE_TENANT_ID": scenario.tenant_id,
            "AZURE_SUBSCRIPTION_ID": scenario.subscriptions[0].subscription_id,
        }
        if scenario.vaults:
            env["AZURE_KEYVAULT_URL"] = self.vault_urls[scenario.vaults[0].name]
        if scenario.workspaces:
            env["AZURE_SUBSCRIPTION_ID"] = scenario.workspaces[0].subscription_id
            env["AZURE_RESOURCE_GROUP"] = scenario.workspaces[0].resource_group
            env["AZURE_WORKSPACE"] = scenario.workspaces[0].name
        env["DEMO_BROKER_OBJECT_ID"] = scenario.broker_principal_id
        for role in DEMO_PRINCIPALS[1:]:
            principal = next((item for item in scenario.principals if item.get("displayName") == role), None)
            if principal is not None:
                env[f"DEMO_{role.upper()}_OBJECT_ID"] = principal["objectId"]
                env[f"DEMO_{role.upper()}_CLIENT_ID"] = principal.get("clientId", "")
        env.update(entra_env(self.arm_url, scenario))
        return env
