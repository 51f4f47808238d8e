import pytest

from shared.adapters.authorization import AuthorizationAdapter
from shared.rbac import PermissionSet

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
