"""Reading infra/ as pycep-parser parses it: files, resources, and the values expressions take for given parameters."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

_INTERPOLATION = re.compile(r"\$\{(\w+)\}")


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


@dataclass(frozen=True)
class Scope:
    """A parsed Bicep file and the arguments its caller passed, to follow a bare name back to its value.

    `parameters` are the values a deployment sets over main.bicep's defaults.
    """

    document: dict[str, Any]
    arguments: dict[str, Any] = field(default_factory=dict)
    caller: Scope | None = None
    path: Path = MAIN
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def follow(self, value: Any) -> tuple[Any, Scope]:
        # pycep drops the quotes of string literals, so a bare string is a name only when it names a var or param.
        if isinstance(value, str):
            if value in self.document.get("variables", {}):
                return self.follow(self.document["variables"][value]["value"])
            if value in self.document.get("parameters", {}):
                if value in self.arguments and self.caller is not None:
                    return self.caller.follow(self.arguments[value])
                if value in self.parameters:
                    return self.parameters[value], self
                return self.document["parameters"][value]["default"], self
        return value, self

    def module(self, relative_path: str) -> Scope:
        for module in self.document.get("modules", {}).values():
            if module["detail"]["path"] == relative_path:
                config = module["config"]
                # A conditional module (`= if (...)`) nests its body one level down.
                body = config["config"] if "condition" in config else config
                return Scope(parse(INFRA / relative_path), body["params"], self, INFRA / relative_path)
        raise AssertionError(f"main.bicep does not deploy {relative_path}")

    def module_condition(self, relative_path: str) -> Any:
        """The condition main.bicep deploys the module under, None when it always does."""
        for module in self.document.get("modules", {}).values():
            if module["detail"]["path"] == relative_path:
                return module["config"].get("condition")
        raise AssertionError(f"main.bicep does not deploy {relative_path}")

    def with_parameters(self, **values: Any) -> Scope:
        return replace(self, parameters={**self.parameters, **values})

    def evaluate(self, value: Any) -> Any:
        """The value of an expression, as far as it can be known before deployment: literals, vars and params (with
        interpolation), conditionals, and/not, replace(), empty() and loadTextContent(); anything else (resource
        properties, module outputs) comes back as the expression it is."""
        value, scope = self.follow(value)
        if isinstance(value, str):
            return _INTERPOLATION.sub(scope._interpolated, value)
        if isinstance(value, list):
            return [scope.evaluate(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "operator" in value:
            return scope._operator(value)
        if "function" in value:
            return scope._function(value)
        return {key: scope.evaluate(item) for key, item in value.items()}

    def _operator(self, expression: dict[str, Any]) -> Any:
        operands = expression["operator"]["operands"]
        match expression["operator"]["type"]:
            case "conditional":
                condition = self.evaluate(operands["condition"])
                assert isinstance(condition, bool), f"cannot tell which branch {expression!r} takes"
                return self.evaluate(operands["true_value"] if condition else operands["false_value"])
            case "and":
                return self.evaluate(operands["operand_1"]) and self.evaluate(operands["operand_2"])
            case "not":
                return not self.evaluate(operands["bool_value"])
        return expression

    def _function(self, expression: dict[str, Any]) -> Any:
        arguments = expression["function"].get("parameters") or {}
        match expression["function"]["type"]:
            case "replace":
                original, old, new = (
                    self.evaluate(arguments[name]) for name in ("original_string", "old_string", "new_string")
                )
                # A value known only once deployed (a module's output) stands in as its expression, a.b.c.
                return original.replace(old, new if isinstance(new, str) else accessed(new))
            case "empty":
                return not self.evaluate(arguments["item_to_test"])
            case "load_text_content":
                return (self.path.parent / arguments["file_path"]).read_text(encoding="utf-8")
        return expression

    def _interpolated(self, match: re.Match[str]) -> str:
        value = self.evaluate(match.group(1))
        return str(value) if isinstance(value, str | int) and value != match.group(1) else match.group(0)


def resources(document: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """Configs of the resources of that type the file deploys (not `existing` references)."""
    return [
        resource["config"]
        for resource in document.get("resources", {}).values()
        if resource["type"] == resource_type and not resource["existing"]
    ]


def resource(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The config of the resource with that symbolic name; of a loop's body for a resource loop."""
    config = document["resources"][name]["config"]
    return config["config"] if "loop_type" in config else config


def resources_in_all_files(resource_type: str) -> list[dict[str, Any]]:
    return [config for path in BICEP_FILES for config in resources(parse(path), resource_type)]


def function_call(value: Any, name: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"expected {name}(...), found {value!r}"
    assert value.get("function", {}).get("type") == name, f"expected {name}(...), found {value!r}"
    return value["function"].get("parameters") or {}


def property_of(value: Any) -> tuple[Any, Any]:
    assert isinstance(value, dict), f"expected a property access, found {value!r}"
    assert value.get("operator", {}).get("type") == "property_accessor", f"expected a property access: {value!r}"
    operands = value["operator"]["operands"]
    return operands["operand_1"], operands["operand_2"]


def accessed(value: Any) -> str:
    """`a.b.c` for a chain of property accesses."""
    if isinstance(value, str):
        return value
    first, rest = property_of(value)
    return f"{accessed(first)}.{accessed(rest)}"


def output_of(value: Any) -> tuple[str, str]:
    """(module, output) of `module.outputs.output`."""
    module, access = property_of(value)
    outputs, output = property_of(access)
    assert outputs == "outputs", f"expected a module output, found {value!r}"
    return module, output
