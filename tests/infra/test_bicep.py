"""Structure of the production Bicep in infra/, read with pycep-parser (the Bicep CLI cannot be installed offline).

What the app needs is derived from the app itself: the %SETTING% names its trigger bindings use, the storage
connections they name and its anonymous routes come from importing function_app in a subprocess; the settings the
README documents come from its Configuration table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .bicep import (
    BICEP_FILES,
    INFRA,
    MAIN,
    REPO,
    Scope,
    function_call,
    parse,
    property_of,
    resources,
    resources_in_all_files,
)

IDENTITY_STORAGE_SUFFIXES = ("credential", "clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri")
# README settings that only make sense on a developer machine, or that production replaces (storage goes
# identity-based; the model catalog ships inside the package).
LOCAL_ONLY_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage",
        "AZUREML_DEV_URL_MFE",
        "BROKER_MODEL_CATALOG_OVERRIDES",
        "DEVSTACK_HOST_MASTER_KEY",
        "DEVSTACK_HOST_FUNCTION_KEY",
    }
)
# Built-in role ids (the same in every tenant) and the resource type each must be assigned on.
EXPECTED_ROLES = {
    ("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "Microsoft.Storage/storageAccounts"),  # Storage Queue Data Contributor
    ("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "Microsoft.Storage/storageAccounts"),  # Storage Table Data Contributor
    ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Microsoft.Storage/storageAccounts"),  # Storage Blob Data Owner
    ("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Microsoft.KeyVault/vaults"),  # Key Vault Secrets Officer
    ("3913510d-42f4-4e42-8a64-420c390055eb", "Microsoft.Insights/components"),  # Monitoring Metrics Publisher
    ("d5a91429-5739-47e2-a06b-3470a27159e7", "Microsoft.EventGrid/topics"),  # EventGrid Data Sender
}

_BINDINGS_PROBE = """
import json, re
import function_app

settings, connections, anonymous_routes = set(), set(), []
for function in function_app.app.get_functions():
    for binding in function.get_bindings():
        spec = binding.get_dict_repr()
        for value in spec.values():
            match = re.fullmatch(r"%(\\w+)%", value) if isinstance(value, str) else None
            if match:
                settings.add(match.group(1))
        if spec.get("connection"):
            connections.add(spec["connection"])
        if spec["type"] == "httpTrigger" and str(spec.get("authLevel", "")).upper() == "ANONYMOUS":
            anonymous_routes.append(spec["route"])
print(json.dumps({"settings": sorted(settings), "connections": sorted(connections), "anonymous": anonymous_routes}))
"""


def settings_object(value: Any, scope: Scope) -> dict[str, tuple[Any, Scope]]:
    """The keys of an object expression (literal, var, param or union(...)), each with the scope of its value."""
    value, scope = scope.follow(value)
    if isinstance(value, dict) and value.get("function", {}).get("type") == "union":
        merged: dict[str, tuple[Any, Scope]] = {}
        for argument in function_call(value, "union").values():
            merged.update(settings_object(argument, scope))
        return merged
    assert isinstance(value, dict), f"app settings must be an object, found {value!r}"
    assert not {"function", "operator"} & value.keys(), f"cannot read app settings from {value!r}"
    return {name: (setting, scope) for name, setting in value.items()}


def setting_value(app_settings: dict[str, tuple[Any, Scope]], name: str) -> Any:
    expression, scope = app_settings[name]
    return scope.follow(expression)[0]


@pytest.fixture(scope="module")
def main() -> Scope:
    return Scope(parse(MAIN))


@pytest.fixture(scope="module")
def function_app_module(main: Scope) -> Scope:
    return main.module("modules/functionapp.bicep")


@pytest.fixture(scope="module")
def app_settings(function_app_module: Scope) -> dict[str, tuple[Any, Scope]]:
    [config] = [
        config
        for config in resources(function_app_module.document, "Microsoft.Web/sites/config")
        if config["name"] == "appsettings"
    ]
    return settings_object(config["properties"], function_app_module)


@pytest.fixture(scope="module")
def app_bindings() -> dict[str, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", _BINDINGS_PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def readme_settings() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = (line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))
    return {name for cell in first_cells for name in cell.split("`")[1::2]}


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: str(path.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    document = parse(path)
    assert document.get("resources") or document.get("modules"), f"{path.name} deploys nothing"


def test_main_deploys_only_local_modules_that_exist(main: Scope) -> None:
    modules = main.document["modules"]
    assert modules
    for name, module in modules.items():
        assert module["type"] == "local", f"module {name} is not a local file: {module['detail']}"
        assert (INFRA / module["detail"]["path"]).is_file(), f"module {name}: {module['detail']['path']} is missing"
    deployed = {INFRA / module["detail"]["path"] for module in modules.values()}
    assert deployed == set(BICEP_FILES) - {MAIN}, "every module file is deployed, and only those"


def test_app_settings_cover_every_setting_the_bindings_use(
    app_settings: dict[str, tuple[Any, Scope]], app_bindings: dict[str, list[str]]
) -> None:
    assert app_bindings["settings"], "the probe found no %SETTING% in any binding; it no longer reads the bindings"
    required = set(app_bindings["settings"]) | {"AZURE_KEYVAULT_URL", "AZURE_CLIENT_ID"}
    for connection in {*app_bindings["connections"], "AzureWebJobsStorage"}:
        required |= {f"{connection}__{suffix}" for suffix in IDENTITY_STORAGE_SUFFIXES}
    assert required - app_settings.keys() == set()


def test_app_settings_cover_every_production_setting_in_the_readme(app_settings: dict[str, tuple[Any, Scope]]) -> None:
    documented = readme_settings()
    assert "AZURE_KEYVAULT_URL" in documented, "the README's Configuration table could not be read"
    assert documented - LOCAL_ONLY_SETTINGS - app_settings.keys() == set()


def test_storage_is_reached_with_the_apps_identity_not_a_connection_string(
    app_settings: dict[str, tuple[Any, Scope]], main: Scope
) -> None:
    assert "AzureWebJobsStorage" not in app_settings
    assert setting_value(app_settings, "AzureWebJobsStorage__credential") == "managedidentity"
    client_id = setting_value(app_settings, "AZURE_CLIENT_ID")
    assert setting_value(app_settings, "AzureWebJobsStorage__clientId") == client_id
    module_name, output = property_of(client_id)
    assert main.document["modules"][module_name]["detail"]["path"] == "modules/identity.bicep"
    assert property_of(output) == ("outputs", "clientId")


def test_production_defaults_are_safe(app_settings: dict[str, tuple[Any, Scope]], main: Scope) -> None:
    assert setting_value(app_settings, "BROKER_PERMISSION_STRICTNESS") == "role-based"
    assert setting_value(app_settings, "BROKER_ALLOW_UNCATALOGUED_MODELS") == "false"
    assert setting_value(app_settings, "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY") == "true"
    dry_run = setting_value(app_settings, "HYGIENE_DRY_RUN")["operator"]
    assert dry_run["type"] == "conditional"
    assert dry_run["operands"]["true_value"] == "true"
    assert main.follow(dry_run["operands"]["condition"])[0] is True
    # The broker treats an empty workspace list as "anywhere", so the deployment must always name the workspaces.
    workspaces = function_call(setting_value(app_settings, "BROKER_ALLOWED_WORKSPACES"), "join")["input_array"]
    parameter = main.document["parameters"][workspaces]
    assert parameter["type"] == "array"
    assert parameter["default"] is None, "the target workspaces must be given at deployment time"
    assert {"type": "min_length", "argument": 1} in parameter["decorators"]


def test_no_connection_strings_or_account_keys_anywhere() -> None:
    forbidden = re.compile(r"\blist\w*\(|AccountKey=|DefaultEndpointsProtocol=|SharedAccessSignature=", re.IGNORECASE)
    for path in BICEP_FILES:
        found = forbidden.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(INFRA)} reads or writes a key: {found}"


def test_storage_accounts_refuse_shared_keys() -> None:
    accounts = resources_in_all_files("Microsoft.Storage/storageAccounts")
    assert accounts
    for account in accounts:
        assert account["properties"]["allowSharedKeyAccess"] is False
        assert account["properties"]["allowBlobPublicAccess"] is False


def test_key_vaults_use_rbac_with_purge_protection() -> None:
    vaults = resources_in_all_files("Microsoft.KeyVault/vaults")
    assert vaults
    for vault in vaults:
        assert vault["properties"]["enableRbacAuthorization"] is True
        assert vault["properties"]["enableSoftDelete"] is True
        assert vault["properties"]["enablePurgeProtection"] is True


def test_role_assignments_are_named_guid_of_scope_principal_and_role() -> None:
    assigned: set[tuple[str, str]] = set()
    for path in BICEP_FILES:
        document = parse(path)
        scope = Scope(document)
        for assignment in resources(document, "Microsoft.Authorization/roleAssignments"):
            name = function_call(assignment["name"], "guid")
            properties = assignment["properties"]
            assert property_of(name["base_string"]) == (assignment["scope"], "id")
            assert name["extra_string_1"] == properties["principalId"]
            assert name["extra_string_2"] == properties["roleDefinitionId"]
            assert properties["principalType"] == "ServicePrincipal"
            role = function_call(scope.follow(properties["roleDefinitionId"])[0], "subscription_resource_id")
            assert role["resource_type"] == "Microsoft.Authorization/roleDefinitions"
            assigned.add((role["resource_name_1"], document["resources"][assignment["scope"]]["type"]))
    assert assigned == EXPECTED_ROLES


def test_roles_go_to_the_identity_the_app_runs_as(main: Scope, function_app_module: Scope) -> None:
    rbac = main.module("modules/rbac.bicep")
    identity_modules = [
        name
        for name, module in main.document["modules"].items()
        if module["detail"]["path"] == "modules/identity.bicep"
    ]
    assert len(identity_modules) == 1
    grantee = property_of(rbac.arguments["principalId"])
    runs_as = property_of(function_app_module.arguments["identityId"])
    assert grantee[0] == runs_as[0] == identity_modules[0]
    [site] = resources(function_app_module.document, "Microsoft.Web/sites")
    assert site["identity"]["type"] == "UserAssigned"
    assert site["identity"]["userAssignedIdentities"] == {"'${identityId}'": {}}


def test_function_app_runs_python_311_on_flex_consumption(function_app_module: Scope) -> None:
    [plan] = resources(function_app_module.document, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    [site] = resources(function_app_module.document, "Microsoft.Web/sites")
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"


def test_easy_auth_requires_entra_id_except_on_the_anonymous_routes(
    function_app_module: Scope, app_bindings: dict[str, list[str]]
) -> None:
    [auth] = [
        config
        for config in resources(function_app_module.document, "Microsoft.Web/sites/config")
        if config["name"] == "authsettingsV2"
    ]
    settings = auth["properties"]
    assert settings["platform"]["enabled"] is True
    assert settings["globalValidation"]["requireAuthentication"] is True
    assert settings["globalValidation"]["unauthenticatedClientAction"] == "Return401"
    assert settings["identityProviders"]["azureActiveDirectory"]["enabled"] is True
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    expected = {f"/{prefix}/{route}" for route in app_bindings["anonymous"]}
    excluded, _ = function_app_module.follow(settings["globalValidation"]["excludedPaths"])
    assert set(excluded) == expected
