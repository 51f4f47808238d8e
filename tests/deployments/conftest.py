"""Every test gets a fresh, fully permitted world (see scenario.py); no network, a fixed clock."""

import pytest

from .scenario import World, build_world


@pytest.fixture
def world() -> World:
    return build_world()
