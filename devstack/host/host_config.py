"""host.json: the HTTP route prefix (extensions.http) and the Storage queue options (extensions.queues)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
# Core Tools runs the host in the Development environment, where the queue extension polls at least every 2 s
# unless host.json says otherwise; in Azure the default is 1 minute.
LOCAL_MAX_POLLING_INTERVAL = timedelta(seconds=2)
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
MAX_BATCH_SIZE = 32

# .NET TimeSpan text: [d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?$")


class HostConfigError(ValueError):
    """host.json holds a value the real host would refuse."""


class MessageEncoding(StrEnum):
    BASE64 = "base64"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class QueueOptions:
    message_encoding: MessageEncoding = MessageEncoding.BASE64
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = LOCAL_MAX_POLLING_INTERVAL

    @classmethod
    def from_section(cls, section: Mapping[str, object]) -> QueueOptions:
        batch_size = _integer(section, "batchsize", 16)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise HostConfigError(f"extensions.queues.batchSize must be between 1 and {MAX_BATCH_SIZE}")
        # The documented default is N*batchSize/2 with N the vCPU count of a plan instance; a local host is N=1.
        new_batch_threshold = _integer(section, "newbatchthreshold", batch_size // 2)
        max_dequeue_count = _integer(section, "maxdequeuecount", 5)
        if new_batch_threshold < 0 or max_dequeue_count < 1:
            raise HostConfigError("extensions.queues: newBatchThreshold >= 0 and maxDequeueCount >= 1")
        polling = _timespan(section, "maxpollinginterval", LOCAL_MAX_POLLING_INTERVAL)
        if polling < MIN_POLLING_INTERVAL:
            raise HostConfigError("extensions.queues.maxPollingInterval must be at least 00:00:00.100")
        encoding = str(section.get("messageencoding", MessageEncoding.BASE64)).lower()
        if encoding not in {item.value for item in MessageEncoding}:
            raise HostConfigError(f"extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            message_encoding=MessageEncoding(encoding),
            batch_size=batch_size,
            new_batch_threshold=new_batch_threshold,
            max_dequeue_count=max_dequeue_count,
            visibility_timeout=_timespan(section, "visibilitytimeout", timedelta(0)),
            max_polling_interval=polling,
        )


# Without functionTimeout, Flex Consumption (the plan infra/ deploys) allows 30 minutes; "-1" means no limit.
DEFAULT_FUNCTION_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True, kw_only=True)
class HostConfig:
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: timedelta | None = DEFAULT_FUNCTION_TIMEOUT


def load_host_config(app_dir: Path) -> HostConfig:
    path = app_dir / "host.json"
    if not path.is_file():
        raise HostConfigError(f"{path} is missing: a function app needs a host.json")
    # .NET configuration keys are case-insensitive.
    document = _lower_keys(json.loads(path.read_text(encoding="utf-8")))
    extensions = document.get("extensions", {})
    http = extensions.get("http", {})
    return HostConfig(
        route_prefix=str(http.get("routeprefix", DEFAULT_ROUTE_PREFIX)).strip("/"),
        queues=QueueOptions.from_section(extensions.get("queues", {})),
        function_timeout=_function_timeout(document.get("functiontimeout")),
    )


def _function_timeout(value: object) -> timedelta | None:
    if value is None:
        return DEFAULT_FUNCTION_TIMEOUT
    text = str(value).strip()
    return None if text == "-1" else parse_timespan(text)


def parse_timespan(text: str) -> timedelta:
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise HostConfigError(f"{text!r} is not a TimeSpan ([d.]hh:mm:ss[.fffffff])")
    parts = match.groupdict()
    return timedelta(
        days=int(parts["days"] or 0),
        hours=int(parts["h"]),
        minutes=int(parts["m"]),
        seconds=int(parts["s"] or 0),
        microseconds=int((parts["f"] or "0").ljust(7, "0")) / 10,
    )


def _integer(section: Mapping[str, object], key: str, default: int) -> int:
    value = section.get(key, default)
    try:
        return int(str(value))
    except ValueError:
        raise HostConfigError(f"extensions.queues.{key} must be an integer, not {value!r}") from None


def _timespan(section: Mapping[str, object], key: str, default: timedelta) -> timedelta:
    value = section.get(key)
    return default if value is None else parse_timespan(str(value))


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key).lower(): _lower_keys(item) for key, item in value.items()}
    return value
