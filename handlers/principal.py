"""Who is calling: the caller's Entra object id, from the headers App Service authentication (Easy Auth) injects.

In Azure, Easy Auth strips these headers from incoming requests and sets them itself, so they can be trusted there
and only there; locally the client sends them (the README shows how to build one).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from shared.problems import UNAUTHORIZED, Problem

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOW_TO_AUTHENTICATE = (
    f"Send {PRINCIPAL_HEADER} (base64 JSON whose claims include '{OBJECT_ID_CLAIMS[0]}' or 'oid') or "
    f"{PRINCIPAL_ID_HEADER} with the caller's object id; in Azure, App Service authentication sets both."
)


class UnauthenticatedError(Exception):
    """The request does not say who is calling; `problem` is the 401 to answer with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.problem = Problem(UNAUTHORIZED, f"{reason} {_HOW_TO_AUTHENTICATE}")


def caller_object_id(headers: Mapping[str, str]) -> str:
    """The caller's object id (a lower-case GUID); raises UnauthenticatedError when the headers do not give one.

    The principal's claims win; the id header is the fallback for a principal without an object id claim (and
    for clients that send only the id). Headers that name two different callers are refused rather than guessed.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    encoded = by_name.get(PRINCIPAL_HEADER.lower(), "").strip()
    principal_id = by_name.get(PRINCIPAL_ID_HEADER.lower(), "").strip()
    claimed = _object_id_claim(encoded) if encoded else None
    if principal_id and not _GUID.match(principal_id):
        raise UnauthenticatedError(f"{PRINCIPAL_ID_HEADER} '{principal_id[:64]}' is not an object id (a GUID).")
    if claimed and principal_id and claimed.lower() != principal_id.lower():
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} and {PRINCIPAL_ID_HEADER} name different callers.")
    object_id = claimed or principal_id
    if not object_id:
        if encoded:
            raise UnauthenticatedError(f"{PRINCIPAL_HEADER} carries no object id claim.")
        raise UnauthenticatedError("The request does not say who is calling.")
    return object_id.lower()


def _object_id_claim(encoded: str) -> str | None:
    """The object id claim of a base64 principal, None when it has none; raises when it is not a principal."""
    try:
        # Padding is sometimes lost when a client builds the header by hand; restoring it is harmless.
        document: Any = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
    except ValueError as error:  # bad base64, bytes that are not UTF-8 and bad JSON are all ValueErrors
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} is not base64-encoded JSON.") from error
    claims = document.get("claims") if isinstance(document, dict) else None
    if not isinstance(claims, list):
        raise UnauthenticatedError(f"{PRINCIPAL_HEADER} has no 'claims' list.")
    for claim_type in OBJECT_ID_CLAIMS:
        for claim in claims:
            if isinstance(claim, dict) and claim.get("typ") == claim_type:
                value = str(claim.get("val", "")).strip()
                if not _GUID.match(value):
                    raise UnauthenticatedError(f"The '{claim_type}' claim '{value[:64]}' is not an object id (a GUID).")
                return value
    return None
