"""/api/docs: the page and every file it loads come from the app, under a policy allowing nothing else."""

import re
from pathlib import Path

import pytest

from handlers import docs
from tests.handlers.handler_support import http_request, user_function

REPO_ROOT = Path(__file__).resolve().parents[2]
SWAGGER_UI = REPO_ROOT / "node_modules" / "swagger-ui-dist"
FUNCTIONS = {
    docs.PAGE.route: user_function(docs.docs_page),
    "docs/swagger-ui.css": user_function(docs.docs_stylesheet),
    "docs/swagger-ui-bundle.js": user_function(docs.docs_bundle),
    "docs/docs.js": user_function(docs.docs_script),
}


def get(route: str):
    return FUNCTIONS[route](http_request("GET", f"/api/{route}"))


def test_the_page_loads_only_files_the_app_serves():
    page = get("docs")
    html = page.get_body().decode()

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert [reference for reference in references if reference != "data:,"] == [asset.route for asset in docs.ASSETS], (
        "the page loads the app's assets, in order, and nothing from elsewhere"
    )
    assert "<script>" not in html, "no inline script for the policy to forbid"
    assert "style=" not in html
    for asset in docs.ASSETS:
        response = get(asset.route)
        assert response.status_code == 200, asset.route
        assert response.mimetype == asset.mimetype
        assert len(response.get_body()) > 100


def test_every_response_carries_a_policy_of_the_app_alone():
    for route in FUNCTIONS:
        headers = get(route).headers
        assert headers["Content-Security-Policy"] == docs.CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
    directives = dict(part.strip().split(" ", 1) for part in docs.CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe" not in docs.CONTENT_SECURITY_POLICY
    assert not re.search(r"https?:", docs.CONTENT_SECURITY_POLICY)


def test_swagger_ui_renders_the_brokers_own_document_with_nothing_from_a_cdn():
    script = get("docs/docs.js").get_body().decode()

    assert 'new URL("openapi.json", document.baseURI)' in script
    assert "validatorUrl: null" in script, "the default validator badge calls validator.swagger.io"
    for route in FUNCTIONS:
        body = get(route).get_body().decode()
        for cdn in ("cdn.", "unpkg.com", "jsdelivr"):
            assert cdn not in body, route


def test_the_committed_swagger_ui_is_the_pinned_package():
    if not SWAGGER_UI.exists():
        pytest.skip("node_modules lacks swagger-ui-dist; run make install")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert (docs.STATIC / "swagger-ui" / name).read_bytes() == (SWAGGER_UI / name).read_bytes(), name
