"""Keep endpoint keys out of logs: a registry of secret values and a logging filter that scrubs them.

This is defence in depth. Code should never log a key in the first place, but an SDK's debug log, an exception
text echoing a response body or a careless f-string must not be able to leak one either. Adapters register each
key value the moment they receive it; the filter, attached to every log handler, replaces any registered value
in the message, its arguments, the traceback, the stack and any extra string attribute of the record.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# Shorter values would blank out ordinary words; endpoint keys are 32+ characters.
MIN_SECRET_LENGTH = 8
_STANDARD_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (of at least MIN_SECRET_LENGTH characters) replaced."""
    # Longest first, so a secret containing another is replaced whole rather than leaving a fragment.
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class SecretRegistry:
    """Secret values to scrub, shared across threads; the oldest are forgotten beyond `max_entries`.

    Bounded because a long-lived worker registers two keys per deployment; a key is only in memory while its
    deployment is being stored, so forgetting old ones does not weaken the filter where it matters.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value and len(value) >= MIN_SECRET_LENGTH:
                    self._values[value] = None
                    self._values.move_to_end(value)
            while len(self._values) > self._max_entries:
                self._values.popitem(last=False)

    def forget(self, *values: str) -> None:
        with self._lock:
            for value in values:
                self._values.pop(value, None)

    def snapshot(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._values)

    def redact(self, text: str) -> str:
        return redact(text, self.snapshot())


default_registry = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Scrubs registered secrets from each record; attach it to handlers (logger filters skip propagated records)."""

    def __init__(self, registry: SecretRegistry = default_registry) -> None:
        super().__init__()
        self._registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._registry.snapshot()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A broken format string would make the handler print msg and args raw; flatten both here instead.
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message, secrets)
        record.args = None
        if record.exc_info:
            # Render the traceback now, scrubbed, and drop the live exception so no later handler re-renders it.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact(value, secrets))
        return True


def install(handlers: Iterable[logging.Handler], registry: SecretRegistry = default_registry) -> RedactingFilter:
    """Attach one RedactingFilter to each handler (e.g. `logging.getLogger().handlers`); returns it."""
    redacting = RedactingFilter(registry)
    for handler in handlers:
        handler.addFilter(redacting)
    return redacting
