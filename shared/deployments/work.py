"""Messages on the internal work queue: which run, which step, and the operation being waited for."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

SUBSCRIBE = "subscribe"
PROVISION = "provision"
STORE_KEYS = "store-keys"
# Steps after a deployment (shared/lifecycle): teardown and key rotation share the work queue.
DELETE_ENDPOINT = "delete-endpoint"
DELETE_SUBSCRIPTION = "delete-subscription"
ROTATE_KEY = "rotate-key"
LIFECYCLE_STEPS = (DELETE_ENDPOINT, DELETE_SUBSCRIPTION, ROTATE_KEY)
STEPS = (SUBSCRIBE, PROVISION, STORE_KEYS, *LIFECYCLE_STEPS)


class MalformedWorkItemError(ValueError):
    """A work message the broker did not write; it cannot be retried into shape."""


@dataclass(frozen=True)
class WorkItem:
    run_id: str
    step: str
    operation_url: str | None = None
    attempt: int = 0

    def to_message(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_message(cls, text: str) -> WorkItem:
        try:
            data = json.loads(text)
            item = cls(**data)
        except (json.JSONDecodeError, TypeError) as error:
            raise MalformedWorkItemError(f"not a work item: {error}") from error
        if item.step not in STEPS or not isinstance(item.run_id, str):
            raise MalformedWorkItemError(f"unknown step '{item.step}'")
        return item

    def polling(self, operation_url: str) -> WorkItem:
        return replace(self, operation_url=operation_url, attempt=0)

    def retried(self) -> WorkItem:
        return replace(self, attempt=self.attempt + 1)

    def next(self, step: str) -> WorkItem:
        return WorkItem(run_id=self.run_id, step=step)
