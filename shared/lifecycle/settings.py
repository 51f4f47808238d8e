"""Settings of teardown, key rotation and cross-region deployments, read from the app settings.

The rotation timer's schedule (KEY_ROTATION_SCHEDULE) is not here: the Functions host resolves it from the app
settings itself, and refuses to start while it is undefined.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.cross_region import CrossRegionHubs

DEFAULT_KEY_VALIDITY_DAYS = 90
# Key Vault's SecretNearExpiry event fires 30 days before expiry; the timer uses the same horizon by default.
DEFAULT_ROTATION_WINDOW_DAYS = 30


class LifecycleSettingError(ValueError):
    """A lifecycle setting with a value the broker cannot use; the message names it."""


@dataclass(frozen=True)
class LifecycleSettings:
    key_validity_days: int = DEFAULT_KEY_VALIDITY_DAYS
    rotation_window_days: int = DEFAULT_ROTATION_WINDOW_DAYS
    hubs: CrossRegionHubs = field(default_factory=CrossRegionHubs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LifecycleSettings:
        env = os.environ if env is None else env
        validity = _days(env, "KEY_VALIDITY_DAYS", DEFAULT_KEY_VALIDITY_DAYS, minimum=1)
        window = _days(env, "KEY_ROTATION_WINDOW_DAYS", DEFAULT_ROTATION_WINDOW_DAYS, minimum=0)
        if window >= validity:
            raise LifecycleSettingError(
                f"KEY_ROTATION_WINDOW_DAYS ({window}) must be shorter than KEY_VALIDITY_DAYS ({validity}), or every "
                "key would be rotated on every run of the timer."
            )
        return cls(
            key_validity_days=validity,
            rotation_window_days=window,
            hubs=CrossRegionHubs.from_setting(env.get("BROKER_CROSS_REGION_HUBS")),
        )


def _days(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise LifecycleSettingError(f"{name} is '{text}'; use a whole number of days, at least {minimum}.")
    return int(text)
