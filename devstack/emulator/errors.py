"""The ARM error envelope: handlers raise ArmError, a middleware turns it into the response Azure would send."""

from __future__ import annotations

import json
import uuid

from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def request_id_headers() -> dict[str, str]:
    """Fresh correlation ids, as ARM puts on every response (clients log them when a call fails)."""
    request_id = str(uuid.uuid4())
    return {"x-ms-request-id": request_id, "x-ms-correlation-request-id": request_id}


class ArmError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict] | None = None,
        additional_info: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.additional_info = additional_info
        self.headers = headers or {}

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        if self.details is not None:
            error["details"] = self.details
        if self.additional_info is not None:
            error["additionalInfo"] = self.additional_info
        return {"error": error}

    def to_response(self) -> web.Response:
        headers = {**request_id_headers(), **self.headers, "Content-Type": JSON_CONTENT_TYPE}
        return web.Response(status=self.status, text=json.dumps(self.body()), headers=headers)


def user_error(status: int, message: str, inner_code: str | None = None) -> ArmError:
    """A Machine Learning resource-provider error: code UserError, the specific reason in details/innerError."""
    details = [{"code": inner_code, "message": message}] if inner_code else None
    return ArmError(status, "UserError", message, details=details)
