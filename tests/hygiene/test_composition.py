"""The composition root's repair port: the resubscribe remediation repairs a deployment as the broker itself."""

from __future__ import annotations

import pytest

from shared.deployments import composition as deployments
from shared.hygiene.composition import repair_port


class Authorization:
    def __init__(self) -> None:
        self.asked = 0

    def own_principal_id(self) -> str:
        self.asked += 1
        return "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"


def test_the_repair_port_repairs_the_deployment_as_the_brokers_own_principal(monkeypatch: pytest.MonkeyPatch):
    repaired: list[tuple[str, str]] = []

    class Service:
        def repair(self, deployment_id: str, *, caller: str) -> str:
            repaired.append((deployment_id, caller))
            return "submission"

    built: list[bool] = []
    monkeypatch.setattr(deployments, "deployment_service", lambda: built.append(True) or Service())
    authorization = Authorization()

    port = repair_port(authorization)  # type: ignore[arg-type]
    nothing_built_yet = (len(built), authorization.asked)
    answer = port("ws-a--llama--0123456789")

    assert nothing_built_yet == (0, 0)
    assert answer == "submission"
    assert repaired == [("ws-a--llama--0123456789", "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d")]
