"""The broker's one credential chain: managed identity in Azure, the emulator's identity endpoint locally."""

from __future__ import annotations

from functools import cache

from azure.core.credentials import TokenCredential


@cache
def broker_credential() -> TokenCredential:
    # DefaultAzureCredential tries managed identity (IDENTITY_ENDPOINT/IDENTITY_HEADER) among others, which is
    # what both Azure Functions and the local emulator provide.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
