"""Route templates (`items/{id:int}`, `files/{name}.{ext}`, `{lang?}`, `{*rest}`) and method-aware resolution."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from devstack.host.route_constraints import Constraint, RouteConstraintError, build_constraint

Target = TypeVar("Target")

# How specific a segment is; lower wins, as in ASP.NET Core's inbound route precedence.
_LITERAL, _COMPLEX, _CONSTRAINED, _PARAMETER, _CATCH_ALL = 1, 2, 3, 4, 5


class RouteTemplateError(ValueError):
    """The template would be rejected by the host at start-up."""


@dataclass(frozen=True)
class _Parameter:
    name: str
    constraints: tuple[Constraint, ...]
    optional: bool
    catch_all: bool
    default: str | None


_Part = str | _Parameter


class RouteTemplate:
    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self._parameters: list[_Parameter] = []
        segments = [_parse_segment(text) for text in _split_outside_braces(self.template)] if self.template else []
        _check_order(self.template, segments)
        pattern = "".join(self._segment_pattern(parts) for parts in segments)
        self._regex = re.compile(f"^{pattern}$", re.IGNORECASE)
        self.precedence = tuple(_rank(parts) for parts in segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a decoded URL path, or None; a trailing slash is ignored."""
        found = self._regex.match(path.rstrip("/"))
        if not found:
            return None
        values = {}
        for index, parameter in enumerate(self._parameters):
            value = found.group(f"p{index}")
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            if not all(constraint(value) for constraint in parameter.constraints):
                return None
            values[parameter.name] = value
        return values

    def _group(self, parameter: _Parameter, value_pattern: str) -> str:
        if any(known.name.lower() == parameter.name.lower() for known in self._parameters):
            raise RouteTemplateError(f"{self.template!r}: the route parameter {parameter.name!r} appears twice")
        self._parameters.append(parameter)
        return f"(?P<p{len(self._parameters) - 1}>{value_pattern})"

    def _segment_pattern(self, parts: list[_Part]) -> str:
        if len(parts) == 1 and isinstance(parts[0], _Parameter):
            parameter = parts[0]
            if parameter.catch_all:
                return f"(?:/{self._group(parameter, '.*')})?"
            group = self._group(parameter, "[^/]+")
            return f"(?:/{group})?" if parameter.optional or parameter.default is not None else f"/{group}"
        pieces = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(re.escape(part))
            elif part.optional or part.catch_all:
                raise RouteTemplateError(f"{self.template!r}: optional and catch-all parameters need their own segment")
            else:
                # Greedy groups backtrack to the last literal, which is ASP.NET's right-to-left complex segment match.
                pieces.append(self._group(part, "[^/]+"))
        return "/" + "".join(pieces)


@dataclass(frozen=True)
class Resolution(Generic[Target]):
    """The route found for a request; `target` is None when no route accepts the method (see `allowed_methods`)."""

    target: Target | None = None
    route_params: dict[str, str] = field(default_factory=dict)
    allowed_methods: frozenset[str] = frozenset()


class Router(Generic[Target]):
    def __init__(self) -> None:
        self._routes: list[tuple[RouteTemplate, frozenset[str] | None, Target]] = []

    def add(self, template: RouteTemplate, methods: frozenset[str] | None, target: Target) -> None:
        """`methods` None accepts every method."""
        self._routes.append((template, methods, target))
        # A stable sort keeps registration order between routes of equal precedence.
        self._routes.sort(key=lambda route: route[0].precedence)

    def resolve(self, path: str, method: str) -> Resolution[Target]:
        allowed: set[str] = set()
        for template, methods, target in self._routes:
            values = template.match(path)
            if values is None:
                continue
            if methods is None or method.upper() in methods:
                return Resolution(target, values)
            allowed |= methods
        return Resolution(allowed_methods=frozenset(allowed))


def _split_outside_braces(template: str) -> Iterator[str]:
    depth, start = 0, 0
    for index, char in enumerate(template):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "/" and depth == 0:
            yield template[start:index]
            start = index + 1
    yield template[start:]


def _parse_segment(text: str) -> list[_Part]:
    if not text:
        raise RouteTemplateError("a route template cannot contain an empty segment ('//')")
    parts: list[_Part] = []
    literal, index = "", 0
    while index < len(text):
        char = text[index]
        if text.startswith(("{{", "}}"), index):
            literal, index = literal + char, index + 2
        elif char == "{":
            end = _closing_brace(text, index)
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(_parse_parameter(text[index + 1 : end]))
            index = end + 1
        elif char == "}":
            raise RouteTemplateError(f"unmatched '}}' in route segment {text!r}")
        else:
            literal, index = literal + char, index + 1
    if literal:
        parts.append(literal)
    if any(isinstance(a, _Parameter) and isinstance(b, _Parameter) for a, b in itertools.pairwise(parts)):
        raise RouteTemplateError(f"route segment {text!r} has two parameters without a literal between them")
    return parts


def _closing_brace(text: str, opening: int) -> int:
    parentheses = 0
    for index in range(opening + 1, len(text)):
        char = text[index]
        parentheses += {"(": 1, ")": -1}.get(char, 0)
        if char == "}" and parentheses == 0:
            return index
    raise RouteTemplateError(f"unclosed '{{' in route segment {text!r}")


def _parse_parameter(spec: str) -> _Parameter:
    catch_all = spec.startswith("*")
    spec = spec.lstrip("*")
    spec, default = _split_default(spec)
    optional = spec.endswith("?")
    spec = spec.removesuffix("?")
    name, *constraint_texts = _split_constraints(spec)
    if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise RouteTemplateError(f"{name!r} is not a valid route parameter name")
    if optional and (catch_all or default is not None):
        raise RouteTemplateError(f"route parameter {name!r} cannot be optional and catch-all or defaulted")
    try:
        # Braces inside a constraint (a regex quantifier) are doubled in templates.
        unescaped = (text.replace("{{", "{").replace("}}", "}") for text in constraint_texts)
        constraints = tuple(build_constraint(text) for text in unescaped)
    except (RouteConstraintError, re.error) as error:
        raise RouteTemplateError(f"route parameter {name!r}: {error}") from error
    return _Parameter(name, constraints, optional, catch_all, default)


def _split_default(spec: str) -> tuple[str, str | None]:
    parentheses = 0
    for index, char in enumerate(spec):
        parentheses += {"(": 1, ")": -1}.get(char, 0)
        if char == "=" and parentheses == 0:
            return spec[:index], spec[index + 1 :]
    return spec, None


def _split_constraints(spec: str) -> list[str]:
    pieces, start, parentheses = [], 0, 0
    for index, char in enumerate(spec):
        parentheses += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and parentheses == 0:
            pieces.append(spec[start:index])
            start = index + 1
    pieces.append(spec[start:])
    return pieces


def _check_order(template: str, segments: list[list[_Part]]) -> None:
    for position, parts in enumerate(segments):
        parameter = parts[0] if len(parts) == 1 and isinstance(parts[0], _Parameter) else None
        is_last = position == len(segments) - 1
        if parameter and parameter.catch_all and not is_last:
            raise RouteTemplateError(f"{template!r}: a catch-all parameter must be the last segment")
        skippable = parameter and (parameter.optional or parameter.default is not None)
        if skippable and not all(_is_skippable(later) for later in segments[position + 1 :]):
            raise RouteTemplateError(f"{template!r}: an optional segment cannot be followed by a required one")


def _is_skippable(parts: list[_Part]) -> bool:
    only = parts[0] if len(parts) == 1 else None
    return isinstance(only, _Parameter) and (only.optional or only.catch_all or only.default is not None)


def _rank(parts: list[_Part]) -> int:
    if all(isinstance(part, str) for part in parts):
        return _LITERAL
    if len(parts) > 1:
        return _COMPLEX
    parameter = parts[0]
    assert isinstance(parameter, _Parameter)
    if parameter.catch_all:
        return _CATCH_ALL
    return _CONSTRAINED if parameter.constraints else _PARAMETER
