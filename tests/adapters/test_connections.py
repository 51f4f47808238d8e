"""Workspace connections against the emulator (strict), at the broker's api-version."""

from shared.adapters.connections import WorkspaceConnectionsAdapter

TARGET = "https://deepseek-r1-abcd.eastus2.models.ai.azure.com"


def test_an_api_key_connection_is_created_read_and_deleted_without_its_key(arm, emulator):
    connections = WorkspaceConnectionsAdapter(arm)
    workspace = emulator.workspace_path("demo-project-westeurope")

    made = connections.put_api_key_connection(
        workspace,
        "deepseek-r1",
        category="Serverless",
        target=TARGET,
        key="secret-key",
        metadata={"keyType": "primary"},
    )
    read = connections.get_connection(workspace, "deepseek-r1")
    connections.delete_connection(workspace, "deepseek-r1")

    assert made == read
    assert (read.category, read.target, read.metadata) == ("Serverless", TARGET, {"keyType": "primary"})
    assert "secret-key" not in repr(read)
    assert connections.get_connection(workspace, "deepseek-r1") is None
    connections.delete_connection(workspace, "deepseek-r1")
