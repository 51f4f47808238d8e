"""Failures of Azure calls as the domain sees them: status, Azure's code and message, and whether to retry."""

from __future__ import annotations

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Conflicts that clear by themselves: a Key Vault name still being soft-deleted, an ARM resource mid-operation.
TRANSIENT_CODES = frozenset({"ObjectIsBeingDeleted", "AnotherOperationInProgress", "Conflict"})


class AzureCallError(Exception):
    """An Azure call failed; carries the service's own code and message so runs can report them verbatim."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.target = target

    @property
    def transient(self) -> bool:
        # No status means the connection itself failed (reset, refused, timed out): worth another try.
        return self.status is None or self.status in TRANSIENT_STATUSES or self.code in TRANSIENT_CODES

    @property
    def not_found(self) -> bool:
        return self.status == 404

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "status": self.status}


class RecordExistsError(Exception):
    """A record with that key already exists (a lost create race, or a duplicate)."""


class RecordChangedError(Exception):
    """The record changed since it was read (ETag mismatch): re-read and re-apply."""
