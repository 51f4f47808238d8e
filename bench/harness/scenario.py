"""The benchmarks' emulator scenario: the demo tenant plus generated workspaces, one partner-model deployment each.

One deployment per model per project is the rule, so every concurrent deployment gets a workspace of its own.
"""

from __future__ import annotations

from typing import Any

from devstack.emulator.scenario import load_scenario_document

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
BENCH_GROUP = "rg-bench"
# The seed's partner model: a Marketplace subscription, then the endpoint (two long-running operations).
PARTNER_MODEL = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
# ARM writes one partner deployment needs: PUT subscription, PUT endpoint, POST listKeys.
ARM_WRITES_PER_DEPLOYMENT = 3
LROS_PER_DEPLOYMENT = 2


def workspace_name(number: int) -> str:
    return f"bench-{number:03d}"


def bench_scenario(workspaces: int) -> dict[str, Any]:
    document = load_scenario_document()
    subscription = document["subscriptions"][0]
    subscription["resourceGroups"] = [*subscription["resourceGroups"], {"name": BENCH_GROUP, "location": "eastus2"}]
    document["workspaces"] = [
        *document["workspaces"],
        *(
            {"resourceGroup": BENCH_GROUP, "name": workspace_name(number), "location": "eastus2"}
            for number in range(workspaces)
        ),
    ]
    requester = next(item["objectId"] for item in document["principals"] if item["displayName"] == "requester")
    document["roleAssignments"] = [
        *document["roleAssignments"],
        # Marketplace models need the broker's permissions at subscription scope too.
        {
            "principalId": document["brokerPrincipalId"],
            "roleName": "Azure AI Developer",
            "scope": f"/subscriptions/{SUBSCRIPTION}",
        },
        {
            "principalId": requester,
            "roleName": "Azure AI Developer",
            "scope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{BENCH_GROUP}",
        },
    ]
    return document
