"""Network isolation: with networkIsolation on (the default) storage and Key Vault take traffic only through private
endpoints resolved by linked private DNS zones, and the app reaches them from its VNet; with it off, none of that is
deployed and both stay reachable on their public endpoints, as the app then needs."""

from __future__ import annotations

from typing import Any

import pytest

from .bicep import MAIN, Scope, output_of, parse, property_of, resource, resources

# Every sub-resource the broker reaches, with the public-cloud zone its private endpoint is resolved in.
PRIVATE_LINKS = {
    "blob": "privatelink.blob.core.windows.net",
    "queue": "privatelink.queue.core.windows.net",
    "table": "privatelink.table.core.windows.net",
    "vault": "privatelink.vaultcore.azure.net",
}
TARGETS = {"blob": "storage", "queue": "storage", "table": "storage", "vault": "keyVault"}


@pytest.fixture(scope="module")
def main() -> Scope:
    return Scope(parse(MAIN))


@pytest.fixture(scope="module")
def network(main: Scope) -> Scope:
    return main.module("modules/network.bicep")


def loop_over(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["resources"][name]["config"]["loop_type"]["detail"]


def test_isolation_is_on_by_default(main: Scope) -> None:
    parameter = main.document["parameters"]["networkIsolation"]
    assert parameter["type"] == "bool"
    assert parameter["default"] is True


def test_the_network_module_is_deployed_only_when_isolated(main: Scope) -> None:
    condition = main.module_condition("modules/network.bicep")
    assert main.with_parameters(networkIsolation=True).evaluate(condition) is True
    assert main.with_parameters(networkIsolation=False).evaluate(condition) is False


def test_private_endpoints_for_blob_queue_table_and_vault(network: Scope) -> None:
    links = network.evaluate("privateLinks")
    assert {link["service"]: link["zone"] for link in links} == PRIVATE_LINKS
    assert {link["service"]: output_of(link["resourceId"]) for link in links} == {
        service: (target, "id") for service, target in TARGETS.items()
    }
    assert loop_over(network.document, "endpoints")["array_name"] == "privateLinks"
    endpoint = resource(network.document, "endpoints")
    [connection] = endpoint["properties"]["privateLinkServiceConnections"]
    [group_id] = connection["properties"]["groupIds"]
    assert property_of(group_id) == ("link", "service")
    assert property_of(connection["properties"]["privateLinkServiceId"]) == ("link", "resourceId")
    assert endpoint["properties"]["subnet"]["id"] == "${vnet.id}/subnets/${privateEndpointSubnetName}"


def test_each_endpoint_is_registered_in_its_zone_and_each_zone_linked_to_the_vnet(network: Scope) -> None:
    for name in ("zones", "zoneLinks", "zoneGroups"):
        assert loop_over(network.document, name)["array_name"] == "privateLinks"
    assert property_of(resource(network.document, "zones")["name"]) == ("link", "zone")
    link = resource(network.document, "zoneLinks")
    assert link["parent"]["operator"]["operands"] == {"operand_1": "zones", "operand_2": "index"}
    assert link["properties"]["registrationEnabled"] is False
    assert property_of(link["properties"]["virtualNetwork"]["id"]) == ("vnet", "id")
    group = resource(network.document, "zoneGroups")
    assert group["parent"]["operator"]["operands"] == {"operand_1": "endpoints", "operand_2": "index"}
    [config] = group["properties"]["privateDnsZoneConfigs"]
    zone_id = config["properties"]["privateDnsZoneId"]
    assert property_of(zone_id)[1] == "id"
    assert property_of(zone_id)[0]["operator"]["operands"] == {"operand_1": "zones", "operand_2": "index"}


def test_the_app_subnet_is_delegated_as_flex_consumption_requires(network: Scope) -> None:
    [vnet] = resources(network.document, "Microsoft.Network/virtualNetworks")
    subnets = {network.evaluate(subnet["name"]): subnet["properties"] for subnet in vnet["properties"]["subnets"]}
    app = subnets[network.evaluate("appSubnetName")]
    assert [delegation["properties"]["serviceName"] for delegation in app["delegations"]] == [
        "Microsoft.App/environments"
    ]
    assert network.evaluate("privateEndpointSubnetName") in subnets
    assert network.document["outputs"]["appSubnetId"]["value"] == "${vnet.id}/subnets/${appSubnetName}"


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "public"])
def test_the_app_is_vnet_integrated_only_when_isolated(main: Scope, isolated: bool) -> None:
    function_app = main.with_parameters(networkIsolation=isolated).module("modules/functionapp.bicep")
    [site] = resources(function_app.document, "Microsoft.Web/sites")
    subnet = function_app.evaluate(site["properties"]["virtualNetworkSubnetId"])
    if isolated:
        assert output_of(subnet) == ("network", "appSubnetId")
    else:
        assert subnet is None


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "public"])
@pytest.mark.parametrize(
    ("module", "resource_type"),
    [
        ("modules/storage.bicep", "Microsoft.Storage/storageAccounts"),
        ("modules/keyvault.bicep", "Microsoft.KeyVault/vaults"),
    ],
)
def test_public_network_access_follows_isolation(main: Scope, module: str, resource_type: str, isolated: bool) -> None:
    scope = main.with_parameters(networkIsolation=isolated).module(module)
    [config] = resources(scope.document, resource_type)
    properties = config["properties"]
    assert scope.evaluate(properties["publicNetworkAccess"]) == ("Disabled" if isolated else "Enabled")
    assert scope.evaluate(properties["networkAcls"]["defaultAction"]) == ("Deny" if isolated else "Allow")


@pytest.mark.parametrize(
    ("parameter", "secure"), [("publicNetworkAccess", "Disabled"), ("networkDefaultAction", "Deny")]
)
@pytest.mark.parametrize("module", ["modules/storage.bicep", "modules/keyvault.bicep"])
def test_the_modules_alone_default_to_isolation(module: str, parameter: str, secure: str) -> None:
    # checkov scans each module on its own, with these defaults.
    assert parse(MAIN.parent / module)["parameters"][parameter]["default"] == secure


def test_storage_is_zone_redundant_by_default(main: Scope) -> None:
    parameter = main.document["parameters"]["storageSkuName"]
    assert parameter["default"] == "Standard_ZRS"
    assert {"type": "allowed", "argument": ["Standard_LRS", "Standard_ZRS"]} in parameter["decorators"]
    storage = main.module("modules/storage.bicep")
    [account] = resources(storage.document, "Microsoft.Storage/storageAccounts")
    assert storage.evaluate(account["sku"]["name"]) == "Standard_ZRS"
    assert (
        main.with_parameters(storageSkuName="Standard_LRS")
        .module("modules/storage.bicep")
        .evaluate(account["sku"]["name"])
        == "Standard_LRS"
    )
