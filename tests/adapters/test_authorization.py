from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator
from shared.adapters.arm import ArmClient
from shared.adapters.authorization import AuthorizationAdapter
from shared.azure_errors import AzureCallError
from shared.rbac import PermissionSet
from shared.required_permissions import AZURE_AI_DEVELOPER_ROLE_ID

DEPLOY = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write"


@pytest.fixture
def authorization(arm, emulator) -> AuthorizationAdapter:
    return AuthorizationAdapter(arm, emulator.credential(), arm_url=emulator.arm_url)


def test_the_broker_knows_its_own_object_id_from_its_token(authorization, emulator):
    assert authorization.own_principal_id() == emulator.env["DEMO_BROKER_OBJECT_ID"]


def test_own_permissions_at_the_workspace_allow_deploying(authorization, emulator):
    permissions = authorization.own_permissions(emulator.workspace_path())

    assert PermissionSet.from_rest(permissions).allows(DEPLOY)


def test_requester_access_comes_from_own_and_group_assignments_at_or_above_the_workspace(authorization, emulator):
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]

    here = authorization.principal_access(requester, emulator.workspace_path("demo-project"))
    elsewhere = authorization.principal_access(requester, emulator.workspace_path("demo-project-westeurope"))

    assert here.role_names == frozenset({"Azure AI Developer"})
    assert PermissionSet.from_rest(here.permissions, here.denials).allows(DEPLOY)
    # Reader there comes through the requester's "deployers" group.
    assert elsewhere.role_names == frozenset({"Reader"})
    assert not PermissionSet.from_rest(elsewhere.permissions, elsewhere.denials).allows(DEPLOY)


def test_a_reader_cannot_deploy(authorization, emulator):
    access = authorization.principal_access(emulator.env["DEMO_READER_OBJECT_ID"], emulator.workspace_path())

    assert access.role_names == frozenset({"Reader"})
    assert not PermissionSet.from_rest(access.permissions, access.denials).allows(DEPLOY)


# What is kept, counted in the emulator's request log.


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _authorization_reads(emulator) -> list[str]:
    entries = emulator.admin.requests(limit=1000)["entries"]
    return [
        entry["path"].rsplit("/providers/Microsoft.Authorization/", 1)[1].split("/")[0]
        for entry in entries
        if entry["method"] == "GET" and "/providers/Microsoft.Authorization/" in entry["path"]
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cached(arm, emulator, clock) -> AuthorizationAdapter:
    return AuthorizationAdapter(
        arm,
        emulator.credential(),
        arm_url=emulator.arm_url,
        access_ttl_seconds=120,
        role_definition_ttl_seconds=21600,
        clock=clock,
    )


def test_a_principals_access_is_read_once_within_the_ttl(cached, emulator, clock):
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    workspace = emulator.workspace_path()

    first = cached.principal_access(requester, workspace)
    emulator.admin.clear_requests()
    clock.now += 119
    again = cached.principal_access(requester.upper(), workspace + "/")

    assert _authorization_reads(emulator) == []
    assert (first.cached, again.cached) == (False, True)
    assert again.role_names == first.role_names
    assert again.permissions == first.permissions


def test_after_the_ttl_assignments_and_denials_are_read_again_but_not_role_definitions(cached, emulator, clock):
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    cached.principal_access(requester, emulator.workspace_path())
    emulator.admin.clear_requests()
    clock.now += 121

    access = cached.principal_access(requester, emulator.workspace_path())

    assert sorted(_authorization_reads(emulator)) == ["denyAssignments", "roleAssignments"]
    assert access.cached  # its role definition is still the one read before


def test_another_principal_at_the_same_scope_costs_one_read(cached, emulator):
    workspace = emulator.workspace_path()
    cached.principal_access(emulator.env["DEMO_REQUESTER_OBJECT_ID"], workspace)
    emulator.admin.clear_requests()

    # The reader holds Reader, which the requester's read did not define: that definition is read too.
    cached.principal_access(emulator.env["DEMO_BROKER_OBJECT_ID"], workspace)

    assert "denyAssignments" not in _authorization_reads(emulator)
    assert _authorization_reads(emulator).count("roleAssignments") == 1


def test_a_fresh_read_reads_everything_again(cached, emulator):
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    cached.principal_access(requester, emulator.workspace_path())
    emulator.admin.clear_requests()

    access = cached.principal_access(requester, emulator.workspace_path(), fresh=True)

    assert sorted(_authorization_reads(emulator)) == ["denyAssignments", "roleAssignments", "roleDefinitions"]
    assert not access.cached


def test_assigned_role_ids_share_the_role_assignment_read(cached, emulator):
    broker = emulator.env["DEMO_BROKER_OBJECT_ID"]
    resource_group = emulator.workspace_path().split("/providers/")[0]

    roles = cached.assigned_role_ids(broker, resource_group)
    emulator.admin.clear_requests()
    access = cached.principal_access(broker, resource_group)

    assert AZURE_AI_DEVELOPER_ROLE_ID in roles
    assert "roleAssignments" not in _authorization_reads(emulator)
    assert "Azure AI Developer" in access.role_names


def test_own_permissions_are_read_once_per_scope(cached, emulator):
    workspace = emulator.workspace_path()
    first = cached.own_permissions(workspace)
    emulator.admin.clear_requests()

    assert cached.own_permissions(workspace) == first
    assert _authorization_reads(emulator) == []
    cached.own_permissions(emulator.workspace_path("demo-project-westeurope"))
    assert _authorization_reads(emulator) == ["permissions"]


def test_a_refused_read_is_not_kept(cached, emulator):
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    emulator.admin.add_fault(pathRegex="/roleAssignments$", method="GET", status=403, count=1)

    with pytest.raises(AzureCallError) as refused:
        cached.principal_access(requester, emulator.workspace_path())
    access = cached.principal_access(requester, emulator.workspace_path())

    assert refused.value.status == 403
    assert not access.cached
    assert PermissionSet.from_rest(access.permissions, access.denials).allows(DEPLOY)


def test_with_a_ttl_of_zero_nothing_is_kept(arm, emulator):
    uncached = AuthorizationAdapter(
        arm, emulator.credential(), arm_url=emulator.arm_url, access_ttl_seconds=0, role_definition_ttl_seconds=0
    )
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    uncached.principal_access(requester, emulator.workspace_path())
    emulator.admin.clear_requests()

    uncached.principal_access(requester, emulator.workspace_path())

    assert len(_authorization_reads(emulator)) == 3


# Deny assignments are listed once per subscription, and per principal only when one that applies names someone other
# than Everyone.

GROUP = "3f4e5d6c-7b8a-4998-8877-665544332211"  # the demo "deployers" group; the requester is a member
REQUESTER = "6a2e4c8f-1b3d-4e5f-a6b7-c8d9e0f1a2b3"
READER = "8e7d6c5b-4a39-4281-b7c6-d5e4f3a2b1c0"
WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/"
    "Microsoft.MachineLearningServices/workspaces/demo-project"
)
WRITE_DENIED = {"scope": WORKSPACE, "actions": [DEPLOY]}


@pytest.fixture
def denying(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start an emulator whose demo scenario holds these deny assignments."""
    with ExitStack() as stack:

        def start(*denies: dict[str, Any]) -> Any:
            document = load_scenario_document()
            document["denyAssignments"] = list(denies)
            running = stack.enter_context(running_emulator(document))
            for name, value in running.env.items():
                monkeypatch.setenv(name, value)
            return running

        yield start


def _adapter(emulator) -> AuthorizationAdapter:
    return AuthorizationAdapter(
        ArmClient(emulator.arm_url, emulator.credential()), emulator.credential(), arm_url=emulator.arm_url
    )


def test_a_deny_for_everyone_blocks_each_principal_but_the_excluded_without_more_reads(denying):
    everyone = [{"id": "00000000-0000-0000-0000-000000000000"}]
    emulator = denying({**WRITE_DENIED, "principals": everyone, "excludePrincipals": [{"id": READER}]})
    adapter = _adapter(emulator)

    blocked = adapter.principal_access(REQUESTER, WORKSPACE)
    emulator.admin.clear_requests()
    excluded = adapter.principal_access(READER, WORKSPACE)

    assert PermissionSet.from_rest(blocked.permissions, blocked.denials).is_denied(DEPLOY)
    assert excluded.denials == []
    assert "denyAssignments" not in _authorization_reads(emulator)


def test_a_deny_naming_a_group_is_read_for_the_principal_so_arm_resolves_membership(denying):
    emulator = denying({**WRITE_DENIED, "principalId": GROUP})
    adapter = _adapter(emulator)
    emulator.admin.clear_requests()

    member = adapter.principal_access(REQUESTER, WORKSPACE)
    outsider = adapter.principal_access(READER, WORKSPACE)

    assert PermissionSet.from_rest(member.permissions, member.denials).is_denied(DEPLOY)
    assert outsider.denials == []
    # One read for the scope, then one per principal: ARM knows who is in the group.
    assert _authorization_reads(emulator).count("denyAssignments") == 3


def test_only_denials_at_the_scope_or_above_apply_and_one_listing_serves_the_subscription(denying):
    everyone = [{"id": "00000000-0000-0000-0000-000000000000"}]
    sibling = WORKSPACE.replace("demo-project", "demo-project-westeurope")
    emulator = denying(
        {"scope": sibling, "actions": [DEPLOY], "principals": everyone},
        {"scope": f"{WORKSPACE}/serverlessEndpoints/one-endpoint", "actions": [DEPLOY], "principals": everyone},
    )
    adapter = _adapter(emulator)
    emulator.admin.clear_requests()

    here = adapter.principal_access(REQUESTER, WORKSPACE)
    there = adapter.principal_access(REQUESTER, sibling)
    resource_group = adapter.principal_access(REQUESTER, WORKSPACE.split("/providers/", maxsplit=1)[0])

    # Neither the sibling's deny nor the one below the workspace applies at the workspace or its resource group.
    assert here.denials == []
    assert resource_group.denials == []
    assert PermissionSet.from_rest(there.permissions, there.denials).is_denied(DEPLOY)
    assert _authorization_reads(emulator).count("denyAssignments") == 1


def test_a_group_deny_on_a_sibling_workspace_costs_no_principal_read(denying):
    sibling = WORKSPACE.replace("demo-project", "demo-project-westeurope")
    emulator = denying({"scope": sibling, "actions": [DEPLOY], "principalId": GROUP})
    adapter = _adapter(emulator)
    emulator.admin.clear_requests()

    here = adapter.principal_access(REQUESTER, WORKSPACE)
    there = adapter.principal_access(REQUESTER, sibling)

    assert here.denials == []
    assert PermissionSet.from_rest(there.permissions, there.denials).is_denied(DEPLOY)
    # The listing, then the principal's own listing only for the workspace the group's deny sits on.
    assert _authorization_reads(emulator).count("denyAssignments") == 2
