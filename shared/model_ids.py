"""Registry model ids (`azureml://registries/<registry>/models/<name>[/versions/<n>]`) as the broker accepts them.

Serverless deployments always run a model's latest version, and azure-ai-ml rejects an id that carries
`/versions/<n>`, so every id is normalised to its versionless form before it is compared, stored or sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "azureml://"
EXPECTED_FORM = "azureml://registries/<registry>/models/<name>[/versions/<version>]"
MAX_SEGMENT_LENGTH = 255

# Registry and model names seen in the catalog use letters, digits, '.', '-' and '_'; anything else (spaces,
# '%', '?') cannot name a registry asset and would corrupt the ARM body or the derived resource names.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class InvalidModelIdError(ValueError):
    """A model id that is not a registry model id; the message says what is wrong and shows the expected form."""


@dataclass(frozen=True)
class ModelId:
    """A parsed registry model id. `version` is kept only to tell the caller it was ignored."""

    registry: str
    name: str
    version: str | None = None

    @property
    def normalized(self) -> str:
        """The versionless id the service deploys (always the latest version)."""
        return f"{SCHEME}registries/{self.registry}/models/{self.name}"

    @property
    def key(self) -> str:
        """Case-insensitive identity, for look-ups and deduplication (the docs disagree on some ids' casing)."""
        return self.normalized.lower()

    def __str__(self) -> str:
        return self.normalized


def parse_model_id(value: str) -> ModelId:
    """Parse a registry model id; raise InvalidModelIdError naming the first thing that is wrong."""
    text = (value or "").strip()
    if not text:
        raise InvalidModelIdError(f"The model id is empty; expected {EXPECTED_FORM}.")
    if not text.lower().startswith(SCHEME):
        raise InvalidModelIdError(f"The model id '{text}' does not start with '{SCHEME}'; expected {EXPECTED_FORM}.")
    segments = text[len(SCHEME) :].split("/")
    keywords_fit = (
        len(segments) in (4, 6)
        and segments[0].lower() == "registries"
        and segments[2].lower() == "models"
        and (len(segments) == 4 or segments[4].lower() == "versions")
    )
    if not keywords_fit:
        raise InvalidModelIdError(f"The model id '{text}' is not of the form {EXPECTED_FORM}.")
    registry, name = segments[1], segments[3]
    version = segments[5] if len(segments) == 6 else None
    _check_segment(text, "registry name", registry)
    _check_segment(text, "model name", name)
    if version is not None:
        _check_segment(text, "version", version)
    return ModelId(registry=registry, name=name, version=version)


def normalize_model_id(value: str) -> str:
    """The versionless form of a model id (raises InvalidModelIdError when it cannot be parsed)."""
    return parse_model_id(value).normalized


def _check_segment(model_id: str, what: str, segment: str) -> None:
    if not segment:
        raise InvalidModelIdError(f"The {what} in model id '{model_id}' is empty; expected {EXPECTED_FORM}.")
    if len(segment) > MAX_SEGMENT_LENGTH:
        raise InvalidModelIdError(
            f"The {what} in model id '{model_id}' is {len(segment)} characters long; the limit is {MAX_SEGMENT_LENGTH}."
        )
    if not _SEGMENT.match(segment):
        raise InvalidModelIdError(
            f"The {what} '{segment}' in model id '{model_id}' must start with a letter or digit and contain only "
            "letters, digits, '.', '-' and '_'."
        )
