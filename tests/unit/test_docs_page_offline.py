"""Every service's docs page works on a network without internet (issue 23): the page names
no host at all, only paths of its own service, and the script, stylesheet and icon it
references are served by that service, publicly, outside /v1, with caching headers. Its
Content-Security-Policy tells the browser the same: its own origin only (ADR 0027)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI

from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import make_settings

SERVICES = ["directory", "consent", "referral", "notify"]
ABSOLUTE = re.compile(r"[a-z][a-z0-9+.-]*:|//", re.IGNORECASE)
"""The start of a URL that is not a plain path: a scheme (``https:``, ``data:``) or ``//``."""
ANY_HOST = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)
KINDS = {
    "script": ("text/javascript", "application/javascript"),
    "stylesheet": ("text/css",),
    "icon": ("image/",),
}


class References(HTMLParser):
    """What a page loads: (kind, URL) of every script, stylesheet and icon, and the text of
    its inline scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self._in_script = not a.get("src")
            if a.get("src"):
                self.loads.append(("script", str(a["src"])))
        elif tag == "link" and a.get("href"):
            rel = set((a.get("rel") or "").lower().split())
            kind = "stylesheet" if "stylesheet" in rel else "icon" if "icon" in rel else "other"
            self.loads.append((kind, str(a["href"])))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def sources(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as directive -> sources."""
    directives = (part.split() for part in policy.split(";") if part.strip())
    return {name: rest for name, *rest in directives}


def sha256(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


@pytest.fixture(scope="module", params=SERVICES)
def app(request: pytest.FixtureRequest) -> FastAPI:
    service: str = request.param
    return create_app(load_spec(service), make_settings(service=service))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # No token: the page and what it loads are public, like /openapi.json.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as c:
        yield c


async def docs_page(client: httpx.AsyncClient) -> str:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    return page.text


class TestThePageNamesNoOtherHost:
    async def test_no_url_with_a_host(self, client: httpx.AsyncClient) -> None:
        html = await docs_page(client)
        assert ANY_HOST.findall(html) == []
        assert not re.search(r"[\"'(=]\s*//", html), "a protocol-relative URL"

    async def test_every_load_is_a_path_of_the_service(self, client: httpx.AsyncClient) -> None:
        page = References(await docs_page(client))
        assert {kind for kind, _ in page.loads} == set(KINDS)
        [script] = page.inline
        [document] = re.findall(r"\burl: '([^']*)'", script)
        assert document == "/openapi.json"
        for kind, url in [*page.loads, ("document", document)]:
            assert url.startswith("/"), (kind, url)
            assert not ABSOLUTE.match(url), (kind, url)
        assert (await client.get(document)).json()["openapi"].startswith("3.")


class TestTheServiceServesWhatThePageLoads:
    async def test_each_script_stylesheet_and_icon(self, client: httpx.AsyncClient) -> None:
        for kind, url in References(await docs_page(client)).loads:
            got = await client.get(url)
            assert got.status_code == 200, url
            assert got.headers["content-type"].startswith(KINDS[kind]), (url, got.headers)
            assert got.content, url
            assert got.headers["x-content-type-options"] == "nosniff", url
            cache = {d.strip() for d in got.headers["cache-control"].split(",")}
            assert {"public", "immutable"} <= cache, url
            assert "max-age=31536000" in cache, url

    async def test_the_script_is_swagger_ui(self, client: httpx.AsyncClient) -> None:
        loads = dict(References(await docs_page(client)).loads)
        script = await client.get(loads["script"])
        assert b"SwaggerUIBundle" in script.content

    async def test_a_cached_file_is_answered_not_modified(self, client: httpx.AsyncClient) -> None:
        loads = dict(References(await docs_page(client)).loads)
        first = await client.get(loads["stylesheet"])
        again = await client.get(
            loads["stylesheet"], headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert "immutable" in again.headers["cache-control"]

    async def test_the_page_itself_is_revalidated(self, client: httpx.AsyncClient) -> None:
        # It names the assets' versioned path: a new version is picked up at once.
        page = await client.get("/docs")
        assert page.headers["cache-control"] == "no-cache"


class TestTheAssetsStayOutsideTheApi:
    async def test_under_docs_where_no_operation_is(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        for _, url in References(await docs_page(client)).loads:
            assert url.startswith("/docs/static/"), url
        paths = app.openapi()["paths"]
        assert any(p.startswith("/v1/") for p in paths)
        assert not [p for p in paths if p == "/docs" or p.startswith("/docs/")]

    async def test_only_the_pages_files_are_served(self, client: httpx.AsyncClient) -> None:
        loads = dict(References(await docs_page(client)).loads)
        folder = loads["script"].rsplit("/", 1)[0]
        assert folder.startswith("/docs/static/")
        for other in ("redoc.standalone.js", "", "%2E%2E/core.py", "%2E%2E/__init__.py"):
            assert (await client.get(f"{folder}/{other}")).status_code == 404, other

    async def test_redoc_is_switched_off(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/redoc")).status_code == 404


class TestThePolicyAllowsOnlyTheServicesOwnOrigin:
    async def test_every_source_is_the_service(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/docs")
        policy = sources(page.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"]
        allowed = {"'self'", "'none'"}
        extra = {"style-src": {"'unsafe-inline'"}, "img-src": {"data:"}}
        for directive, given in policy.items():
            for source in given:
                hashed = directive == "script-src" and source.startswith("'sha256-")
                assert hashed or source in allowed | extra.get(directive, set()), (
                    directive,
                    source,
                )

    async def test_the_inline_script_runs_by_its_hash(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/docs")
        script_src = sources(page.headers["content-security-policy"])["script-src"]
        assert "'unsafe-inline'" not in script_src
        for script in References(page.text).inline:
            assert sha256(script) in script_src


class TestTheChecksFailOnACdnPage:
    """FastAPI's default page (Swagger UI from a CDN) fails every check above."""

    async def test_fastapis_default_page(self) -> None:
        transport = httpx.ASGITransport(app=FastAPI())
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as c:
            page = await c.get("/docs")
            loads = References(page.text).loads
            assert ANY_HOST.findall(page.text)
            assert [url for _, url in loads if ABSOLUTE.match(url)]
            assert "content-security-policy" not in page.headers
            for _, url in loads:
                assert (await c.get(url)).status_code == 404
