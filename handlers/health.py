"""GET /api/health: version, reachability of each dependency and whether callers' identities can be trusted
(anonymous, for probes and humans): 503 degraded when a dependency fails or the broker runs in Azure without Easy
Auth, in which case `authentication.detail` says why."""

from __future__ import annotations

import azure.functions as func

from handlers.http_responses import json_response
from handlers.principal import header_trust
from shared.config import Settings
from shared.health import AuthenticationHealth, check_health

blueprint = func.Blueprint()


@blueprint.function_name("health")
@blueprint.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.adapters.arm import ArmClient
    from shared.adapters.identity import broker_credential
    from shared.adapters.keyvault import KeyVaultAdapter
    from shared.adapters.storage import probe_queue_service

    settings = Settings.from_env()
    probes = {
        "storage": lambda: probe_queue_service(settings.storage),
        "azureResourceManager": lambda: ArmClient(settings.arm_url, broker_credential(), retry_total=0).probe(),
    }
    if settings.key_vault_url:
        vault_url = settings.key_vault_url
        probes["keyVault"] = lambda: KeyVaultAdapter(vault_url, broker_credential()).probe()
    trust = header_trust()
    authentication = AuthenticationHealth(trust.trusted, trust.easy_auth, trust.in_azure, trust.detail)
    report = check_health(probes, authentication=authentication)
    return json_response(report.as_dict(), status_code=200 if report.healthy else 503)
