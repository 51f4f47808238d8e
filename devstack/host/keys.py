"""The host's keys and authorization levels: a function key, and a master key that also opens admin endpoints."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

MASTER_KEY_SETTING = "DEVSTACK_HOST_MASTER_KEY"
FUNCTION_KEY_SETTING = "DEVSTACK_HOST_FUNCTION_KEY"
KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"


class AuthLevel(StrEnum):
    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


@dataclass(frozen=True)
class HostKeys:
    master: str
    function: str
    generated: tuple[str, ...] = ()
    """Names of the settings that were unset, whose keys were generated for this run."""

    @classmethod
    def from_settings(cls, environ: Mapping[str, str]) -> HostKeys:
        keys, generated = {}, []
        for setting in (MASTER_KEY_SETTING, FUNCTION_KEY_SETTING):
            keys[setting] = environ.get(setting) or ""
            if not keys[setting]:
                keys[setting] = secrets.token_urlsafe(30)
                generated.append(setting)
        return cls(keys[MASTER_KEY_SETTING], keys[FUNCTION_KEY_SETTING], tuple(generated))

    def authorizes(self, level: AuthLevel, presented: str | None) -> bool:
        if level is AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        accepted = [self.master] if level is AuthLevel.ADMIN else [self.master, self.function]
        # Compare every key in constant time so timing does not reveal which one came close.
        matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in accepted]
        return any(matches)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the x-functions-key header, else the `code` query parameter."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY_PARAMETER) or None
