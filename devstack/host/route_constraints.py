"""ASP.NET Core route constraints (`{id:int}`, `{name:alpha}`, `{n:range(1,9)}`...) as the Functions host uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

Constraint = Callable[[str], bool]

_INTEGER = re.compile(r"^[+-]?\d+$")
_FLOATING = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_HEX32 = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_GUID = re.compile(rf"^({_HEX32}|\{{{_HEX32}\}}|\({_HEX32}\))$")
_ALPHA = re.compile(r"^[a-zA-Z]*$")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class RouteConstraintError(ValueError):
    """A constraint name or its arguments are not ones the host resolves."""


def _integer_in(bounds: tuple[int, int]) -> Constraint:
    return lambda value: bool(_INTEGER.match(value)) and bounds[0] <= int(value) <= bounds[1]


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Constraint] = {
    "int": _integer_in(_INT32),
    "long": _integer_in(_INT64),
    "bool": lambda value: value.lower() in {"true", "false"},
    "guid": lambda value: bool(_GUID.match(value)),
    "alpha": lambda value: bool(_ALPHA.match(value)),
    "double": lambda value: bool(_FLOATING.match(value)),
    "float": lambda value: bool(_FLOATING.match(value)),
    "decimal": lambda value: bool(_DECIMAL.match(value)),
    "datetime": _is_datetime,
    "required": lambda value: value != "",
}


def _long_args(name: str, arguments: list[str], count: int) -> list[int]:
    if len(arguments) != count or not all(_INTEGER.match(argument) for argument in arguments):
        raise RouteConstraintError(f"constraint {name} needs {count} integer argument(s)")
    return [int(argument) for argument in arguments]


def _numeric_bound(name: str, arguments: list[str]) -> Constraint:
    is_long = _SIMPLE["long"]
    if name == "min":
        (low,) = _long_args(name, arguments, 1)
        return lambda value: is_long(value) and int(value) >= low
    if name == "max":
        (high,) = _long_args(name, arguments, 1)
        return lambda value: is_long(value) and int(value) <= high
    low, high = _long_args(name, arguments, 2)
    return lambda value: is_long(value) and low <= int(value) <= high


def _length_bound(name: str, arguments: list[str]) -> Constraint:
    if name == "minlength":
        (low,) = _long_args(name, arguments, 1)
        return lambda value: len(value) >= low
    if name == "maxlength":
        (high,) = _long_args(name, arguments, 1)
        return lambda value: len(value) <= high
    if len(arguments) == 1:
        (exact,) = _long_args(name, arguments, 1)
        return lambda value: len(value) == exact
    low, high = _long_args(name, arguments, 2)
    return lambda value: low <= len(value) <= high


def build_constraint(text: str) -> Constraint:
    """`int`, `range(1,9)`, `regex(^a+$)`, ... -> a predicate on the route value."""
    name, _, rest = text.partition("(")
    name = name.strip().lower()
    if rest and not rest.endswith(")"):
        raise RouteConstraintError(f"constraint {text!r} has an unclosed argument list")
    raw_arguments = rest[:-1]
    if name == "regex":
        # The pattern is used as written (unanchored) and case-insensitively, like RegexRouteConstraint.
        pattern = re.compile(raw_arguments, re.IGNORECASE)
        return lambda value: pattern.search(value) is not None
    arguments = [argument.strip() for argument in raw_arguments.split(",")] if rest else []
    if name in _SIMPLE:
        if arguments:
            raise RouteConstraintError(f"constraint {name} takes no arguments")
        return _SIMPLE[name]
    if name in {"min", "max", "range"}:
        return _numeric_bound(name, arguments)
    if name in {"length", "minlength", "maxlength"}:
        return _length_bound(name, arguments)
    raise RouteConstraintError(f"the constraint reference {name!r} could not be resolved")
