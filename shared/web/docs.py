"""Every service's docs page (Swagger UI at ``/docs``), served whole by the service itself.

FastAPI's default page loads Swagger UI's script and stylesheet from a public CDN; on a
hospital or municipal network without open internet it stays blank. Here the files come
from a Python package (``fastapi-offline``'s copy of swagger-ui-dist, pinned in
``constraints.txt``), mounted under ``/docs/static/<package version>/``: public like the
page and ``/openapi.json``, outside ``/v1``, and cached for good since a new version of the
package is a new URL. The page says so to the browser too: its Content-Security-Policy
lets it load from its own origin only (ADR 0027). ReDoc is switched off: one page to keep
working offline.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DOCS_URL = "/docs"
ASSETS_PACKAGE = "fastapi_offline"
ASSETS_URL = f"{DOCS_URL}/static/{version('fastapi-offline')}"
"""Where the assets are served; the package's version in the path keeps caches honest."""
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
FAVICON = "favicon.png"
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Swagger UI's default would send the document to validator.swagger.io for a badge.
    "validatorUrl": None,
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class _Assets(StaticFiles):
    """The three files the page uses, with caching headers; nothing else of the package."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in (SWAGGER_JS, SWAGGER_CSS, FAVICON):
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        response.headers.update(ASSET_HEADERS)
        return response


def content_security_policy(html: str) -> str:
    """What the page may load: its own origin, and its one inline script by hash."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        # Inline styles stay allowed (descriptions render as HTML and may carry style
        # attributes); they fetch nothing that img-src and default-src do not allow.
        # Swagger UI's icons are SVG data: URLs.
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "base-uri 'none'; "
        "form-action 'self'"
    )


def install_docs(app: FastAPI) -> None:
    """``/docs``, its OAuth2 redirect page and its assets, on an app made with
    ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS_URL, _Assets(packages=[(ASSETS_PACKAGE, "static")]), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
        html = bytes(page.body).decode()
        page.headers["Content-Security-Policy"] = content_security_policy(html)
        page.headers["Cache-Control"] = "no-cache"
        return page

    app.add_route(DOCS_URL, docs, include_in_schema=False)
    if redirect_url:

        async def oauth2_redirect(request: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(redirect_url, oauth2_redirect, include_in_schema=False)
