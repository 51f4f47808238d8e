"""Names the broker gives to Azure resources: endpoints, Marketplace subscriptions and Key Vault secrets.

Every derived name is deterministic, so a retried or resumed step finds the resource an earlier attempt made
instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.azure_ids import WorkspaceId
from shared.model_ids import ModelId

ENDPOINT_NAME_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,51}$")
ENDPOINT_NAME_MAX = 52
SUBSCRIPTION_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")

SECRET_NAME_PREFIX = "serverless"
WORKSPACE_HASH_LENGTH = 6
SECRET_HASH_LENGTH = 12
_NON_NAME_CHARACTERS = re.compile(r"[^a-z0-9]+")


class InvalidNameError(ValueError):
    """A name Azure would refuse; the message says which rule it breaks and how to pick another."""


@dataclass(frozen=True)
class SecretNames:
    """Key Vault secret names for an endpoint's two keys."""

    primary: str
    secondary: str


def endpoint_name_problem(name: str) -> str | None:
    """Why `name` is not a valid serverless endpoint name, or None when it is."""
    if not name:
        return "The endpoint name is empty."
    if len(name) > ENDPOINT_NAME_MAX:
        return f"The endpoint name '{name}' is {len(name)} characters long; the limit is {ENDPOINT_NAME_MAX}."
    if not name[0].isascii() or not name[0].isalpha():
        return f"The endpoint name '{name}' must start with a letter."
    invalid = sorted({character for character in name if not (character.isascii() and character.isalnum())} - {"-"})
    if invalid:
        listed = ", ".join(f"'{character}'" for character in invalid)
        return f"The endpoint name '{name}' may contain only letters, digits and '-'; it contains {listed}."
    return None


def validate_endpoint_name(name: str) -> str:
    """Return `name` unchanged when valid; raise InvalidNameError explaining the broken rule otherwise."""
    problem = endpoint_name_problem(name)
    if problem:
        raise InvalidNameError(problem)
    return name


def derive_endpoint_name(model: ModelId, workspace: WorkspaceId) -> str:
    """The endpoint name used when a request names none: `<model-name>-<workspace hash>`, lowercase.

    The service wants endpoint names unique per region, so a name built from the model alone would collide
    between projects in one region; a short hash of the workspace id keeps it unique yet stable. The service
    treats names case-insensitively, hence lowercase.
    """
    suffix = "-" + _short_hash(workspace.key, WORKSPACE_HASH_LENGTH)
    stem = _NON_NAME_CHARACTERS.sub("-", model.name.lower()).strip("-")
    stem = stem[: ENDPOINT_NAME_MAX - len(suffix)].rstrip("-")
    if not stem or not stem[0].isalpha():
        raise InvalidNameError(
            f"Cannot derive an endpoint name from model name '{model.name}': an endpoint name must start with a "
            "letter. Pass endpointName explicitly."
        )
    return validate_endpoint_name(stem + suffix)


def marketplace_subscription_name(model: ModelId) -> str:
    """The seed's convention (Bicep pivot): the model name with '.' removed, plus '-subscription'.

    Keeping the documented name lets the broker recognise a subscription made by hand or by the docs' template.
    """
    name = model.name.replace(".", "") + "-subscription"
    if not SUBSCRIPTION_NAME_PATTERN.match(name):
        raise InvalidNameError(
            f"The Marketplace subscription name '{name}' derived from model {model} is invalid: it must be "
            "1-255 letters, digits, '-' or '_', starting with a letter or digit."
        )
    return name


def key_vault_secret_names(workspace: WorkspaceId, endpoint_name: str) -> SecretNames:
    """Secret names for an endpoint's primary and secondary keys: `serverless-<endpoint>-<hash>-<key type>`.

    The endpoint name keeps the secret recognisable; the hash of the workspace id (lowercased, like Key Vault
    and ARM compare names) keeps two workspaces' same-named endpoints apart in one vault.
    """
    validate_endpoint_name(endpoint_name)
    stem = f"{SECRET_NAME_PREFIX}-{endpoint_name.lower()}-{_short_hash(workspace.key, SECRET_HASH_LENGTH)}"
    # Longest case: 10 + 1 + 52 + 1 + 12 + len("-secondary") = 86, well inside Key Vault's 127.
    return SecretNames(primary=f"{stem}-primary", secondary=f"{stem}-secondary")


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
