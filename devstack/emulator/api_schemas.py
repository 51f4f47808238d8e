"""The Machine Learning api-versions the emulator serves, each with JSON Schemas derived from its official OpenAPI.

`schemas/<api-version>.json` holds the definitions of one api-version (plus `common-types-v3.json`, ARM's shared
types), each file naming the azure-rest-api-specs path and commit it was derived from. A file's `roles` say which
definition describes which body the emulator reads or writes (`serverlessEndpoint`, `workspace`, ...); an api-version
serves exactly the roles its file names, so the supported api-versions per route come from these files.

Three uses:
- `request_errors`: why a request body is not valid at its api-version (strict mode answers them with ARM's 400
  `InvalidRequestContent`, in the wording ARM uses for the same deserialization failures);
- `shape`: a resource as an api-version shows it, i.e. only the properties (and enum values) that version declares,
  so 2024-01-01-preview never returns `contentSafety`;
- `response_errors`: the contract tests' check that every answer is valid at its api-version.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from devstack.emulator.errors import ArmError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
URN = "urn:emulator-schema:"
_DROP = object()


@dataclass(frozen=True)
class BodyError:
    """One reason a body is invalid: where (ARM's dotted path) and the deserializer's sentence."""

    path: str
    message: str


def _dotted(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class SchemaCatalog:
    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        documents = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]
        self.registry: Registry = Registry().with_resources(
            (document["$id"], Resource.from_contents(document, default_specification=DRAFT202012))
            for document in documents
        )
        self.documents = {document["apiVersion"]: document for document in documents if "apiVersion" in document}
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}

    def versions(self, role: str) -> tuple[str, ...]:
        """The api-versions that serve a role, oldest first."""
        return tuple(sorted(version for version, document in self.documents.items() if role in document["roles"]))

    def source(self, version: str) -> dict[str, str]:
        return self.documents[version]["source"]

    def has(self, version: str | None, role: str) -> bool:
        return version in self.documents and role in self.documents[version]["roles"]

    def _reference(self, version: str, role: str) -> str:
        reference = self.documents[version]["roles"][role]
        return reference if reference.startswith(URN) else f"{URN}{version}{reference}"

    def validator(self, version: str, role: str) -> Draft202012Validator:
        key = (version, role)
        if key not in self._validators:
            schema = {"$ref": self._reference(version, role)}
            self._validators[key] = Draft202012Validator(schema, registry=self.registry)
        return self._validators[key]

    def header_schema(self, version: str, header: str) -> dict[str, Any] | None:
        return (self.documents.get(version, {}).get("headers") or {}).get(header)

    # -- validation -------------------------------------------------------------------------------------------------

    def request_errors(self, version: str, role: str, body: Any) -> list[BodyError]:
        errors = sorted(self.validator(version, role).iter_errors(body), key=lambda error: list(error.absolute_path))
        return [problem for error in errors for problem in _explain(error)]

    def response_errors(self, version: str, role: str, body: Any) -> list[str]:
        return [
            f"{_dotted(error.absolute_path) or '<body>'}: {error.message}"
            for error in self.validator(version, role).iter_errors(body)
        ]

    # -- shaping ----------------------------------------------------------------------------------------------------

    def shape(self, version: str, role: str, body: Any) -> Any:
        """The body with only what the api-version declares: undeclared properties and enum values are left out."""
        resolver = self.registry.resolver()
        resolved = resolver.lookup(self._reference(version, role))
        shaped = self._shape(resolved.contents, body, resolved.resolver)
        return body if shaped is _DROP else shaped

    def _shape(self, schema: Any, value: Any, resolver: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
        if not isinstance(schema, dict):
            return value
        if isinstance(value, dict):
            declared = schema.get("properties")
            extra = schema.get("additionalProperties")
            if declared is None and not isinstance(extra, dict):
                return value
            shaped = {}
            for name, item in value.items():
                subschema = (declared or {}).get(name, extra if isinstance(extra, dict) else None)
                if subschema is None:
                    continue
                kept = self._shape(subschema, item, resolver)
                if kept is not _DROP:
                    shaped[name] = kept
            return shaped
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [kept for item in value if (kept := self._shape(schema["items"], item, resolver)) is not _DROP]
        if "enum" in schema and value not in schema["enum"]:
            return _DROP
        return value


def _explain(error: ValidationError) -> list[BodyError]:
    """ARM's deserializer sentences (Newtonsoft.Json wording) for a schema violation."""
    path = _dotted(error.absolute_path)
    type_name = error.schema.get("title", "object") if isinstance(error.schema, dict) else "object"
    if "propertyNames" in error.absolute_schema_path:
        # A closed polymorphic variant: the instance is the property name it does not define.
        member = _join(path, str(error.instance))
        return [
            BodyError(
                member, f"Could not find member '{error.instance}' on object of type '{type_name}'. Path '{member}'."
            )
        ]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [
            BodyError(
                _join(path, name),
                f"Could not find member '{name}' on object of type '{type_name}'. Path '{_join(path, name)}'.",
            )
            for name in sorted(set(error.instance) - allowed)
        ]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [
            BodyError(_join(path, name), f"Required property '{name}' not found in JSON. Path '{path}'.")
            for name in error.validator_value
            if name not in error.instance
        ]
    if error.validator in {"enum", "const"}:
        return [
            BodyError(
                path, f"Error converting value {json.dumps(error.instance)} to type '{type_name}'. Path '{path}'."
            )
        ]
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else "/".join(error.validator_value)
        return [
            BodyError(path, f"Error converting value {json.dumps(error.instance)} to type '{expected}'. Path '{path}'.")
        ]
    return [BodyError(path, f"The value at '{path or '<body>'}' is invalid: {error.message}.")]


def invalid_request_content(problems: list[BodyError]) -> ArmError:
    """ARM's 400 for a body its api-version's schema rejects, the first problem in the message, all in details."""
    first = problems[0]
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{first.message}'",
        target=first.path or None,
        details=[
            {"code": "InvalidRequestContent", "target": problem.path, "message": problem.message}
            for problem in problems
        ],
    )


# Which schema role describes an answer's body, by method and path (the first match wins).
_ANSWER_ROLES = (
    ("POST", re.compile(r"/serverlessEndpoints/[^/]+/(listKeys|regenerateKeys)$", re.I), "endpointKeys"),
    ("GET PUT", re.compile(r"/serverlessEndpoints/[^/]+$", re.I), "serverlessEndpoint"),
    ("GET", re.compile(r"/serverlessEndpoints$", re.I), "serverlessEndpointList"),
    ("GET PUT", re.compile(r"/marketplaceSubscriptions/[^/]+$", re.I), "marketplaceSubscription"),
    ("GET", re.compile(r"/marketplaceSubscriptions$", re.I), "marketplaceSubscriptionList"),
    ("POST", re.compile(r"/connections/[^/]+/listsecrets$", re.I), "connection"),
    ("GET PUT", re.compile(r"/connections/[^/]+$", re.I), "connection"),
    ("GET", re.compile(r"/connections$", re.I), "connectionList"),
    ("GET", re.compile(r"/mfeOperationsStatus/[^/]+$", re.I), "operationStatus"),
    ("GET", re.compile(r"/Microsoft\.MachineLearningServices/workspaces/[^/]+$", re.I), "workspace"),
)


def answer_role(method: str, path: str, status: int) -> str | None:
    """The role of a Machine Learning answer's body (`error` for failures), None when it has no schema here."""
    if status >= 400:
        return "error"
    return next(
        (
            role
            for methods, pattern, role in _ANSWER_ROLES
            if method.upper() in methods.split() and pattern.search(path)
        ),
        None,
    )


@cache
def catalog() -> SchemaCatalog:
    return SchemaCatalog()
