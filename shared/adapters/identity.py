"""The broker's credentials: managed identity in Azure, the emulator's identity endpoint locally.

`broker_credential()` is the one chain for ARM and Key Vault. `storage_credential(...)` is the credential an
identity-based storage connection names (`AzureWebJobsStorage__credential`, `__clientId`, ...), chosen the way the
Functions host chooses it (Microsoft.Extensions.Azure's ClientFactory.CreateCredential), so the app and the host's
triggers sign in to storage as the same identity. Both are made once per process: each keeps its own token cache.
"""

from __future__ import annotations

from functools import cache

from azure.core.credentials import TokenCredential

from shared.config import StorageCredentialSettings


@cache
def broker_credential() -> TokenCredential:
    # DefaultAzureCredential tries managed identity (IDENTITY_ENDPOINT/IDENTITY_HEADER) among others, which is
    # what both Azure Functions and the local emulator provide.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


@cache
def storage_credential(settings: StorageCredentialSettings) -> TokenCredential:
    """The token credential for an identity-based storage connection.

    - `credential=managedidentity`: ManagedIdentityCredential for the user-assigned identity named by `clientId`,
      `managedIdentityResourceId` or `managedIdentityObjectId` (at most one), else the system-assigned one;
    - `tenantId` + `clientId` + `clientSecret`: ClientSecretCredential (a service principal);
    - only `clientId`: DefaultAzureCredential with that managed identity client id;
    - nothing: the broker's own chain (`broker_credential()`).
    """
    from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    if settings.managed_identity:
        chosen = [
            value
            for value in (
                settings.client_id,
                settings.managed_identity_resource_id,
                settings.managed_identity_object_id,
            )
            if value
        ]
        if len(chosen) > 1:
            raise ValueError(
                "Only one of clientId, managedIdentityResourceId or managedIdentityObjectId can name the managed "
                "identity of a storage connection."
            )
        if settings.managed_identity_resource_id:
            return ManagedIdentityCredential(identity_config={"mi_res_id": settings.managed_identity_resource_id})
        if settings.managed_identity_object_id:
            return ManagedIdentityCredential(identity_config={"object_id": settings.managed_identity_object_id})
        return ManagedIdentityCredential(client_id=settings.client_id)
    if settings.tenant_id and settings.client_id and settings.client_secret:
        return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret)
    if settings.managed_identity_object_id or settings.managed_identity_resource_id:
        # The Python DefaultAzureCredential takes no resource or object id; the .NET one the host uses does.
        raise ValueError("managedIdentityResourceId and managedIdentityObjectId need credential=managedidentity here.")
    if settings.client_id:
        return DefaultAzureCredential(
            exclude_interactive_browser_credential=True, managed_identity_client_id=settings.client_id
        )
    return broker_credential()
