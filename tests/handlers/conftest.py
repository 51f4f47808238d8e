"""The handlers reach the service through `shared.deployments.composition.deployment_service()`; the `service`
fixture replaces that one function, so every handler under test talks to the same FakeDeploymentService."""

import pytest

from shared.deployments import composition
from tests.handlers.handler_support import FakeDeploymentService


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> FakeDeploymentService:
    fake = FakeDeploymentService()
    monkeypatch.setattr(composition, "deployment_service", lambda: fake)
    return fake
