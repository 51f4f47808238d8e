"""/api/docs in a real browser: headless Chromium (Debian's package) loads the page from the local host, with no
network beyond it, and Swagger UI renders the broker's OpenAPI document under the page's Content-Security-Policy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Broker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (make chromium)"),
]


def _chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--virtual-time-budget=15000",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_api_reference_renders_every_route_offline_within_its_content_security_policy(broker: Broker, tmp_path):
    url = f"{broker.host.url}/api/docs"
    screenshot = tmp_path / "docs.png"

    rendered = _chromium("--dump-dom", url, profile=tmp_path / "dom")
    shot = _chromium(f"--screenshot={screenshot}", "--window-size=1280,1600", url, profile=tmp_path / "shot")

    assert rendered.returncode == 0, rendered.stderr[-2000:]
    dom = rendered.stdout
    assert "Serverless Deployment Broker" in dom, "Swagger UI did not render the document's title"
    for path in ("/api/deployments/what-if", "/api/runs/{runId}/approve", "/api/models"):
        assert path in dom, f"{path} is not on the rendered page"
    assert "Content Security Policy" not in rendered.stderr, rendered.stderr[-2000:]
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000, "the screenshot is (nearly) blank"
