"""The one bounded JSON reader both intakes (HTTP bodies and `deployment-requests` messages) use before anything else.

`read_json_object(raw, limits)` returns the decoded top-level object, or raises `WireError` naming the rule the input
broke (`limit`), the limit's value (`maximum`) and where (`field`, `where`). Nothing else escapes it, whatever the
input: the checks that could exhaust the stack or memory run first and without recursion.

The rules, in the order they are checked (`limit` names them):

- `size`: at most 1 MiB for an HTTP body, 64 KiB for a queue message's text (Azure's queue limit); bytes as
  received, byte order mark included.
- `encoding`: UTF-8 only. A UTF-8 byte order mark is accepted and ignored (RFC 8259 section 8.1 lets a parser do
  either). UTF-16 and UTF-32 (recognised by their byte order mark, or without one by their NUL bytes, which JSON
  never holds raw), bytes that are not UTF-8, and escapes of unpaired surrogates (`"\\ud800"`, which decode to
  text no UTF-8 encoder accepts) are refused.
- `empty`: nothing but whitespace.
- `depth`: objects and arrays nested more than 32 deep (the top-level object is depth 1). Counted in one pass over
  the text with strings skipped, before `json.loads`, which recurses, ever sees it.
- `json-syntax`: anything `json.loads` refuses, and `NaN`, `Infinity` and numbers beyond a float, which are not JSON.
- `number-length`: a number literal longer than 64 characters.
- `duplicate-key`: a member given twice in one object (RFC 8259 leaves the meaning open; we refuse, not guess).
- `top-level`: the document is not an object.
- `string-length`: a string value or member name longer than 8 KiB (8192 characters); the longest field the
  broker takes, an ARM id, is far shorter.

`check_media_type` adds the HTTP rule `media-type`: `application/json` or `application/<anything>+json`, with no
charset or `charset=utf-8`. Pure: no SDK, no I/O.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from shared.problems import PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, VALIDATION_FAILED, Problem, ProblemType

MAX_DEPTH = 32
MAX_STRING = 8 * 1024
MAX_NUMBER = 64
HTTP_MAX_BYTES = 1024 * 1024
QUEUE_MAX_BYTES = 64 * 1024

SIZE = "size"
ENCODING = "encoding"
EMPTY = "empty"
DEPTH = "depth"
JSON_SYNTAX = "json-syntax"
NUMBER_LENGTH = "number-length"
DUPLICATE_KEY = "duplicate-key"
TOP_LEVEL = "top-level"
STRING_LENGTH = "string-length"
MEDIA_TYPE = "media-type"

BODY_FIELD = "(body)"
UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
_FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)
# A string (its closing quote optional, so an unterminated one runs to the end) or a bracket. Strings are matched
# whole so that brackets inside them are not counted; the unrolled loop keeps the regex linear.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
# The same, with the punctuation that tells member names from values.
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_CHANGE = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_MEMBER_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}:,]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_NAME = 64
_SHOWN_VALUE = 100


@dataclass(frozen=True)
class WireLimits:
    """What one intake accepts; `subject` starts every message ("The body", "The request message")."""

    max_bytes: int
    subject: str
    max_depth: int = MAX_DEPTH
    max_string: int = MAX_STRING
    max_number: int = MAX_NUMBER


HTTP_LIMITS = WireLimits(max_bytes=HTTP_MAX_BYTES, subject="The body")
QUEUE_LIMITS = WireLimits(max_bytes=QUEUE_MAX_BYTES, subject="The request message")


class WireError(Exception):
    """The input broke rule `limit` (of value `maximum`, when it has one) at `field` (a dotted member path, or
    `(body)`) / `where` (a position such as "line 1, column 40")."""

    def __init__(
        self,
        limit: str,
        message: str,
        *,
        maximum: int | None = None,
        field: str = BODY_FIELD,
        where: str | None = None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message
        self.maximum = maximum
        self.field = field
        self.where = where

    @property
    def problem_type(self) -> ProblemType:
        """413 payload-too-large for size, 415 unsupported-media-type for the media type, else 400."""
        return {SIZE: PAYLOAD_TOO_LARGE, MEDIA_TYPE: UNSUPPORTED_MEDIA_TYPE}.get(self.limit, VALIDATION_FAILED)

    @property
    def limit_description(self) -> dict[str, Any]:
        """The `limit` member of the problem: the rule's name, and its value and the place when known."""
        described: dict[str, Any] = {"name": self.limit}
        if self.maximum is not None:
            described["maximum"] = self.maximum
        if self.where is not None:
            described["where"] = self.where
        return described

    def as_error(self) -> dict[str, str]:
        """The `{field, message}` entry of a validation problem's `errors`."""
        return {"field": self.field, "message": self.message}

    def problem(self) -> Problem:
        extensions: dict[str, Any] = {"limit": self.limit_description}
        if self.problem_type.status == 400:
            extensions["errors"] = [self.as_error()]
        return Problem(self.problem_type, self.message, None, extensions)


def read_json_object(raw: bytes | str, limits: WireLimits) -> dict[str, Any]:
    """The JSON object `raw` holds; WireError for anything else (and only WireError)."""
    try:
        return _read(raw, limits)
    except WireError:
        raise
    except Exception as error:  # noqa: BLE001 # pragma: no cover - the checks above rule it out; the contract holds
        raise WireError(JSON_SYNTAX, f"{limits.subject} could not be read ({type(error).__name__}).") from None


def decoded_text(raw: bytes | str) -> str:
    """The text of a message `read_json_object` accepted: UTF-8 decoded, without its byte order mark."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    return raw.removeprefix(UTF8_BOM).decode("utf-8")


def lenient_text(raw: bytes | str) -> str:
    """Any input as text for best-effort reading (a ticket, a poison copy): invalid UTF-8 bytes become U+FFFD."""
    if isinstance(raw, str):
        return _SURROGATE.sub("\ufffd", raw.removeprefix("\ufeff"))
    return raw.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")


def top_level_string(raw: bytes | str, name: str, *, scan_bytes: int = QUEUE_MAX_BYTES) -> str | None:
    """The string value of member `name` of the top-level object, read from text that may not be JSON at all (too
    big, too deep, truncated, with duplicate members...): one bounded pass over the first `scan_bytes`, strings
    matched whole, so a `"ticket":` inside another string or a nested object is not taken for it. None when there
    is no such string, or it is blank. The first occurrence wins; unpaired surrogates become U+FFFD."""
    text = lenient_text(raw[:scan_bytes])
    depth, previous, wanted = 0, "", False
    for match in _MEMBER_TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first == '"':
            if wanted:
                value = _json_string(token)
                return value if value is not None and value.strip() else None
            previous = token
            continue
        wanted = first == ":" and depth == 1 and _is_name(previous, name)
        previous = ""
        if first in "[{":
            depth += 1
        elif first in "]}":
            depth = max(0, depth - 1)
    return None


def check_media_type(content_type: str | None, limits: WireLimits = HTTP_LIMITS) -> None:
    """Refuse (WireError `media-type`) a Content-Type other than JSON in UTF-8: `application/json` or
    `application/*+json`, with no charset parameter or `charset=utf-8` (RFC 8259 section 8.1: JSON is UTF-8)."""
    wanted = "send Content-Type: application/json (UTF-8)."
    if content_type is None or not content_type.strip():
        raise WireError(MEDIA_TYPE, f"{limits.subject} has no Content-Type; {wanted}")
    media, _, parameters = content_type.partition(";")
    kind, _, subtype = media.strip().lower().partition("/")
    shown = _shown(content_type, _SHOWN_VALUE)
    if kind != "application" or not (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5)):
        raise WireError(MEDIA_TYPE, f"Content-Type '{shown}' is not JSON; {wanted}")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise WireError(MEDIA_TYPE, f"Content-Type '{shown}' names a charset other than UTF-8; {wanted}")


def _read(raw: bytes | str, limits: WireLimits) -> dict[str, Any]:
    subject = limits.subject
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError(ENCODING, f"{subject} holds an unpaired surrogate; it is not Unicode text.") from None
    if len(raw) > limits.max_bytes:
        raise WireError(
            SIZE,
            f"{subject} is {len(raw):,} bytes; the limit is {limits.max_bytes:,} bytes ({_human(limits.max_bytes)}).",
            maximum=limits.max_bytes,
        )
    text = _text(raw, subject)
    if not text.strip():
        raise WireError(EMPTY, f"{subject} is empty; send a JSON object.")
    _check_depth(text, limits)
    document = _loads(text, limits)
    if not isinstance(document, dict):
        raise WireError(TOP_LEVEL, f"{subject} must be a JSON object, not {_json_kind(document)}.")
    _check_strings(text, document, limits)
    return document


def _text(raw: bytes, subject: str) -> str:
    for mark, encoding in _FOREIGN_BOMS:
        if raw.startswith(mark):
            raise WireError(
                ENCODING, f"{subject} is {encoding} (it starts with a {encoding} byte order mark); send UTF-8."
            )
    raw = raw.removeprefix(UTF8_BOM)
    if b"\x00" in raw:
        # JSON never holds a raw NUL (in strings it is escaped): this is UTF-16 or UTF-32 without a byte order mark.
        offset = raw.index(b"\x00")
        raise WireError(
            ENCODING,
            f"{subject} holds a NUL byte (byte {offset}), as UTF-16 or UTF-32 text does; send UTF-8.",
            where=f"byte {offset}",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError(
            ENCODING,
            f"{subject} is not UTF-8 (byte {error.start} cannot be decoded); send UTF-8.",
            where=f"byte {error.start}",
        ) from None


def _check_depth(text: str, limits: WireLimits) -> None:
    if text.count("[") + text.count("{") <= limits.max_depth:
        return  # too few brackets to nest that deep
    # The deepest point, counted at C speed over the brackets outside strings. An unmatched closer can only make the
    # count low after a point json.loads never gets past, so every prefix it descends into is counted exactly.
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    if max(itertools.accumulate(map(_DEPTH_CHANGE.__getitem__, brackets), initial=0)) <= limits.max_depth:
        return
    depth = 0
    for match in _TOKENS.finditer(text):  # too deep: find where, for the message
        first = match.group()[0]
        if first == '"':
            continue
        depth = depth + 1 if first in "[{" else max(0, depth - 1)
        if depth > limits.max_depth:
            where = _position(text, match.start())
            raise WireError(
                DEPTH,
                f"{limits.subject} nests objects and arrays more than {limits.max_depth} deep ({where}); the "
                f"limit is {limits.max_depth}.",
                maximum=limits.max_depth,
                where=where,
            )


def _loads(text: str, limits: WireLimits) -> Any:
    subject = limits.subject

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document = dict(pairs)
        if len(document) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    shown = _shown(name, _SHOWN_NAME)
                    raise WireError(
                        DUPLICATE_KEY,
                        f"{subject} gives member '{shown}' more than once in one object; send each member once.",
                        field=shown,
                    )
                seen.add(name)
        return document

    def number(literal: str) -> str:
        if len(literal) > limits.max_number:
            raise WireError(
                NUMBER_LENGTH,
                f"{subject} has a number of {len(literal):,} characters; the limit is {limits.max_number}.",
                maximum=limits.max_number,
            )
        return literal

    def integer(literal: str) -> int:
        return int(number(literal))

    def real(literal: str) -> float:
        value = float(number(literal))
        if not math.isfinite(value):
            raise WireError(JSON_SYNTAX, f"{subject} has the number {literal}, too large for JSON to carry.")
        return value

    def constant(name: str) -> Any:
        raise WireError(JSON_SYNTAX, f"{subject} is not JSON: {name} is not a JSON value.")

    try:
        return json.loads(text, object_pairs_hook=unique, parse_int=integer, parse_float=real, parse_constant=constant)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise WireError(JSON_SYNTAX, f"{subject} is not JSON: {error.msg} ({where}).", where=where) from None
    except ValueError as error:  # pragma: no cover - every number passes the hooks above; kept as the last word
        raise WireError(JSON_SYNTAX, f"{subject} is not JSON ({type(error).__name__}).") from None


def _check_strings(text: str, document: dict[str, Any], limits: WireLimits) -> None:
    """Every member name and string value within the length limit and free of unpaired surrogates (from escapes
    such as \\ud800, which decode to text no UTF-8 encoder accepts). The text tells at C speed whether any string
    could break either rule (a decoded string is never longer than its quoted form); only then is the document
    walked, iteratively, to name the member."""
    longest = max(map(len, _STRINGS.findall(text)), default=0)
    if longest <= limits.max_string + 2 and not _SURROGATE_ESCAPE.search(text):
        return
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while pending:
        path, container = pending.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for name, item in items:
            if isinstance(name, str):
                _check_string(name, (*path, name), limits, what="member name")
            if isinstance(item, str):
                _check_string(item, (*path, str(name)), limits, what="string")
            elif isinstance(item, dict | list):
                pending.append(((*path, str(name)), item))


def _check_string(value: str, path: tuple[str, ...], limits: WireLimits, *, what: str) -> None:
    if len(value) > limits.max_string:
        field = _field(path)
        raise WireError(
            STRING_LENGTH,
            f"{limits.subject} has a {what} of {len(value):,} characters at {field}; the limit is "
            f"{limits.max_string:,} characters.",
            maximum=limits.max_string,
            field=field,
            where=field,
        )
    if _SURROGATE.search(value):
        field = _field(path)
        raise WireError(
            ENCODING,
            f"{limits.subject} has a {what} at {field} escaping an unpaired surrogate (such as \\ud800); it is not "
            "Unicode text.",
            field=field,
            where=field,
        )


def _is_name(token: str, name: str) -> bool:
    if token == f'"{name}"':
        return True
    return "\\" in token and len(token) <= 8 * len(name) and _json_string(token) == name


def _json_string(token: str) -> str | None:
    """A string token decoded; one cut short (unterminated, maybe mid-escape) is closed after dropping up to the
    last 6 characters (the longest escape, \\uXXXX)."""
    candidates = [token] if len(token) > 1 and token.endswith('"') and not _escapes_quote(token) else []
    body = token[1:].removesuffix('"') if candidates else token[1:]
    candidates += [f'"{body[: len(body) - cut]}"' for cut in range(min(6, len(body)) + 1)]
    for candidate in candidates:
        try:
            value = json.loads(candidate, strict=False)
        except ValueError:
            continue
        if isinstance(value, str):
            return _SURROGATE.sub("\ufffd", value)
    return None


def _escapes_quote(token: str) -> bool:
    """Whether the final quote of `token` is escaped (an odd run of backslashes before it)."""
    run = len(token) - 1 - len(token[:-1].rstrip("\\"))
    return run % 2 == 1


def _field(path: tuple[str, ...]) -> str:
    return ".".join(_shown(part, _SHOWN_NAME) for part in path) or BODY_FIELD


def _shown(text: str, limit: int) -> str:
    text = _SURROGATE.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    return f"line {line}, column {column}"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _human(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size // 1024} KiB"
