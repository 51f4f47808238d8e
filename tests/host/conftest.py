"""Fixtures for the host tests; Azurite itself comes from the suite-wide `azurite` fixture."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def queue_prefix() -> str:
    # Queue names unique to the module, so leftovers of one host never reach another on the shared Azurite.
    return f"t{uuid.uuid4().hex[:10]}"
