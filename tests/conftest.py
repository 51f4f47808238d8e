"""Suite-wide fixtures: the local Azure stack pieces, each started once per session on free ports."""

from collections.abc import Iterator

import pytest

from devstack.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    running = start_azurite()
    yield running
    running.stop()
