"""Every test gets a fresh, fully permitted world (see scenario.py); no network, a fixed clock."""

import pytest

from shared.engine import StepTimings

from .scenario import World, build_world


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def stepwise() -> World:
    """A world whose steps never carry on in the same invocation: every hand-off is a queued message, so a test can
    act between two steps."""
    return build_world(timings=StepTimings(carry_on_seconds=0))
