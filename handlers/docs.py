"""GET /api/docs: the API reference, Swagger UI rendering /api/openapi.json, served whole by the app (anonymous).

The page and every asset it loads come from the app itself, with no CDN, so it renders where the app answers and
nothing else does (a private network, an offline laptop). The Swagger UI files are copied from the pinned npm package
(`swagger-ui-dist` in package-lock.json) into handlers/static/swagger-ui/ by the Makefile's npm step and committed:
`func azure functionapp publish` and azd package this directory, not node_modules (.funcignore leaves it out), so a
publish from any clone carries them. The Content-Security-Policy allows scripts, styles and fetches from the app alone;
`data:` images are the icons Swagger UI's stylesheet embeds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Asset:
    """A file the page loads: its route under /api and where it lies in handlers/static/."""

    route: str
    path: str
    mimetype: str
    function_name: str

    @property
    def content(self) -> bytes:
        return _read(self.path)


PAGE = Asset("docs", "docs.html", "text/html", "docs_page")
# Relative to the page (/api/docs), these are what docs.html loads, in its order.
ASSETS = (
    Asset("docs/swagger-ui.css", "swagger-ui/swagger-ui.css", "text/css", "docs_stylesheet"),
    Asset("docs/swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js", "text/javascript", "docs_bundle"),
    Asset("docs/docs.js", "docs.js", "text/javascript", "docs_script"),
)
_STYLESHEET, _BUNDLE, _SCRIPT = ASSETS

blueprint = func.Blueprint()


@blueprint.function_name(PAGE.function_name)
@blueprint.route(route=PAGE.route, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def docs_page(req: func.HttpRequest) -> func.HttpResponse:
    return _served(PAGE)


@blueprint.function_name(_STYLESHEET.function_name)
@blueprint.route(route=_STYLESHEET.route, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def docs_stylesheet(req: func.HttpRequest) -> func.HttpResponse:
    return _served(_STYLESHEET)


@blueprint.function_name(_BUNDLE.function_name)
@blueprint.route(route=_BUNDLE.route, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def docs_bundle(req: func.HttpRequest) -> func.HttpResponse:
    return _served(_BUNDLE)


@blueprint.function_name(_SCRIPT.function_name)
@blueprint.route(route=_SCRIPT.route, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def docs_script(req: func.HttpRequest) -> func.HttpResponse:
    return _served(_SCRIPT)


def _served(asset: Asset) -> func.HttpResponse:
    return func.HttpResponse(
        asset.content,
        status_code=200,
        mimetype=asset.mimetype,
        charset="utf-8",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            # The files change only with a deployment; an hour keeps a new one from waiting long.
            "Cache-Control": "public, max-age=3600",
        },
    )


@functools.cache
def _read(path: str) -> bytes:
    return (STATIC / path).read_bytes()
