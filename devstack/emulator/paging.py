"""ARM list paging: `{"value": [...], "nextLink": <absolute URL with $skipToken>}`, nextLink only while more remain.

The skip token is opaque to clients (they follow nextLink as given), so it is the offset, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from devstack.emulator.errors import ArmError

SKIP_TOKEN = "$skipToken"


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "offset" or not value.isdigit():
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ArmError(400, "InvalidSkipToken", f"The skip token '{token}' is invalid.") from None


def page(request: web.Request, items: Sequence[dict[str, Any]], page_size: int) -> dict[str, Any]:
    token = request.query.get(SKIP_TOKEN)
    offset = _decode(token) if token else 0
    end = offset + max(1, page_size)
    body: dict[str, Any] = {"value": list(items[offset:end])}
    if end < len(items):
        query = {key: value for key, value in request.query.items() if key != SKIP_TOKEN}
        query[SKIP_TOKEN] = _encode(end)
        body["nextLink"] = f"{request.scheme}://{request.host}{request.path}?{urlencode(query)}"
    return body
