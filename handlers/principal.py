"""Who is calling: the caller's Entra object id, from the headers App Service authentication (Easy Auth) injects.

Easy Auth strips these headers from incoming requests and sets them itself, so they can be trusted where it runs
and only there. The broker therefore fails closed: running in Azure (WEBSITE_INSTANCE_ID or WEBSITE_SITE_NAME set,
as App Service sets them on its instances; either counts, since which of the two every Functions plan sets is not
verified) without Easy Auth (App Service sets WEBSITE_AUTH_ENABLED=True when it is on), it refuses every principal
header with a 401 saying why, and /api/health reports it. Outside Azure the headers are
taken as sent: the local host's own Easy Auth sets them from an emulator token (on by default), and low-level tests
that turn it off send them by hand.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.access import Caller
from shared.problems import UNAUTHORIZED, Problem

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
# App roles arrive under the principal's `role_typ` (App Service names the long claim type there); `roles` as the token
# names it is accepted too. Groups keep their JWT name.
ROLE_CLAIMS = ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "roles")
GROUPS_CLAIM = "groups"
# Set by App Service on the instances it runs (Functions included); either one means "deployed in Azure".
AZURE_INSTANCE_SETTINGS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME")
EASY_AUTH_SETTING = "WEBSITE_AUTH_ENABLED"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOW_TO_AUTHENTICATE = (
    "Send an Entra ID bearer token for the broker's API (Authorization: Bearer ...): App Service authentication "
    f"validates it and sets {PRINCIPAL_HEADER} (base64 JSON whose claims include '{OBJECT_ID_CLAIMS[0]}' or 'oid') "
    f"and {PRINCIPAL_ID_HEADER} with the caller's object id."
)
_HOW_TO_FIX = (
    "Enable App Service authentication (authsettingsV2, as infra/ deploys it) so that the platform strips "
    "client-sent principal headers and sets them itself."
)


@dataclass(frozen=True)
class HeaderTrust:
    """Whether principal headers can be believed where the broker runs, and why (for 401s and /api/health)."""

    trusted: bool
    in_azure: bool
    easy_auth: bool
    detail: str


def header_trust(environ: Mapping[str, str] | None = None) -> HeaderTrust:
    """Principal headers are trusted unless the broker runs in Azure without App Service authentication."""
    environ = os.environ if environ is None else environ
    markers = [name for name in AZURE_INSTANCE_SETTINGS if environ.get(name, "").strip()]
    easy_auth = environ.get(EASY_AUTH_SETTING, "").strip().lower() in {"true", "1"}
    if markers and not easy_auth:
        return HeaderTrust(
            False,
            True,
            False,
            f"The broker runs in Azure ({' and '.join(markers)} {'is' if len(markers) == 1 else 'are'} set) but "
            f"App Service authentication is not enabled ({EASY_AUTH_SETTING} is not 'true'), so anyone could forge "
            f"{PRINCIPAL_HEADER}: principal headers are refused. {_HOW_TO_FIX}",
        )
    if markers:
        return HeaderTrust(True, True, True, "App Service authentication sets the principal headers.")
    if easy_auth:
        return HeaderTrust(True, False, True, "Easy Auth (the local host's) sets the principal headers.")
    return HeaderTrust(
        True,
        False,
        False,
        "Not running in Azure and no Easy Auth in front: principal headers are taken as the client sends them.",
    )


class UnauthenticatedError(Exception):
    """The request does not say who is calling; `problem` is the 401 to answer with."""

    def __init__(self, reason: str, *, hint: str = _HOW_TO_AUTHENTICATE) -> None:
        super().__init__(reason)
        self.problem = Problem(UNAUTHORIZED, f"{reason} {hint}" if hint else reason)


def caller_object_id(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str:
    """The caller's object id (a lower-case GUID); raises UnauthenticatedError when the headers do not give one."""
    return caller_of(headers, environ).object_id


def caller_of(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Caller:
    """The caller: object id, app roles and groups; raises UnauthenticatedError when the headers do not say who.

    The principal's claims win; the id header is the fallback for a principal without an object id claim (and
    for clients that send only the id, who then hold no app role). Headers that name two different callers are
    refused rather than guessed. In Azure without Easy Auth (`header_trust`), no header is believed at all.
    """
    trust = header_trust(environ)
    if not trust.trusted:
        raise UnauthenticatedError(trust.detail, hint="")
    by_name = {name.lower(): value for name, value in headers.items()}
    encoded = by_name.get(PRINCIPAL_HEADER.lower(), "").strip()
    principal_id = by_name.get(PRINCIPAL_ID_HEADER.lower(), "").strip()
    document = _principal_document(encoded) if encoded else {}
    claimed = _object_id_claim(document) if encoded else None
    if principal_id and not _GUID.match(principal_id):
        raise UnauthenticatedError(f"{PRINCIPAL_ID_HEADER} '{principal_id[:64]}' is not an object id (a GUID).")
    if claimed and principal_id and claimed.lower() != principal_id.lower():
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} and {PRINCIPAL_ID_HEADER} name different callers.")
    object_id = claimed or principal_id
    if not object_id:
        if encoded:
            raise UnauthenticatedError(f"{PRINCIPAL_HEADER} carries no object id claim.")
        raise UnauthenticatedError("The request does not say who is calling.")
    role_types = {str(document.get("role_typ") or ""), *ROLE_CLAIMS} - {""}
    return Caller.of(
        object_id, roles=_claim_values(document, role_types), groups=_claim_values(document, {GROUPS_CLAIM})
    )


def _principal_document(encoded: str) -> dict[str, Any]:
    """The decoded principal; raises when it is not a principal (base64 JSON with a `claims` list)."""
    try:
        # Padding is sometimes lost when a client builds the header by hand; restoring it is harmless.
        document: Any = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
    except ValueError as error:  # bad base64, bytes that are not UTF-8 and bad JSON are all ValueErrors
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} is not base64-encoded JSON.") from error
    claims = document.get("claims") if isinstance(document, dict) else None
    if not isinstance(claims, list):
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} has no 'claims' list.")
    return document


def _claim_values(document: Mapping[str, Any], claim_types: set[str]) -> list[str]:
    return [
        str(claim.get("val", "")).strip()
        for claim in document.get("claims", [])
        if isinstance(claim, dict) and claim.get("typ") in claim_types and str(claim.get("val", "")).strip()
    ]


def _object_id_claim(document: Mapping[str, Any]) -> str | None:
    """The object id claim of a principal, None when it has none; raises when the claim is not a GUID."""
    for claim_type in OBJECT_ID_CLAIMS:
        for claim in document["claims"]:
            if isinstance(claim, dict) and claim.get("typ") == claim_type:
                value = str(claim.get("val", "")).strip()
                if not _GUID.match(value):
                    raise UnauthenticatedError(f"The '{claim_type}' claim '{value[:64]}' is not an object id (a GUID).")
                return value
    return None
