"""Swagger UI and ReDoc, opened in headless Chromium with the network cut, make no request beyond
the app itself, and render: every operation listed (Swagger UI), the API's title (ReDoc). In the
same browser, a page of a dev server on another loopback port calls the local API (CORS, local mode).

The network is cut twice: every host name but 127.0.0.1 resolves to nothing, and Playwright aborts
any request to another host (and records it). Chromium is Debian's (`.ci/run` installs it) or
Google Chrome; without one the test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, Route, sync_playwright

from tests.servers import uvicorn_server

BROWSERS = ("chromium", "google-chrome")
# The flags that keep Chromium from phoning home at start (updates, sync, field trials), which a
# closed network would refuse; the resolver rule is the cut itself.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOOPBACK = "127.0.0.1"


def browser_path() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found:
        return found
    missing = f"no Chromium to open the docs pages in ({' or '.join(BROWSERS)} on PATH; `.ci/run` installs chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory, local_engine_dir: Path) -> Iterator[str]:
    """The app as `make run` serves it (local mode, the local engine), on 127.0.0.1."""
    env = {
        "APP_ENV": "local",
        "DATA_DIR": str(local_engine_dir),
        "DYNAMODB_TABLE": f"docs-{uuid.uuid4().hex[:8]}",
        "SEED_DEMO_DATA": "false",
        "LOG_LEVEL": "WARNING",
    }
    with uvicorn_server(env, tmp_path_factory.mktemp("docs-server")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = browser_path()
    with sync_playwright() as playwright:
        # A new browser has a new, empty profile.
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class PageLog:
    """Every request a page makes, what went out of loopback, and what failed."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.failures: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self.failures.append(f"{request.url}: {request.failure}"))
        page.on("response", self._status)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.failures.append(str(error)))
        page.route("**/*", self._only_loopback)

    def _only_loopback(self, route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            self.outside.append(request.url)
            route.abort("internetdisconnected")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.failures.append(message.text)

    def _status(self, response: Response) -> None:
        if response.status >= 400:
            self.failures.append(f"{response.url}: HTTP {response.status}")

    def assert_offline(self) -> None:
        assert self.requests, "the page made no request at all"
        not_loopback = [url for url in self.requests if urlsplit(url).hostname != LOOPBACK]
        assert not_loopback == [], not_loopback
        assert self.outside == []
        assert self.failures == []


def open_page(browser: Browser, url: str) -> tuple[Page, PageLog]:
    page = browser.new_page()
    log = PageLog(page)
    page.goto(url)
    return page, log


def test_swagger_ui_lists_every_operation_with_no_outside_request(browser: Browser, docs_url: str) -> None:
    spec = httpx.get(f"{docs_url}/openapi.json").json()
    # Swagger UI lists the webhooks (one per event type) as operations too, after the paths.
    operations = sum(
        1
        for section in ("paths", "webhooks")
        for path in spec.get(section, {}).values()
        for method in path
        if method != "parameters"
    )
    assert spec["webhooks"], "the document names the webhooks integrators receive"
    page, log = open_page(browser, f"{docs_url}/docs")
    page.locator(".opblock-summary").nth(operations - 1).wait_for(timeout=30_000)
    assert page.locator(".opblock-summary").count() == operations
    page.wait_for_load_state("networkidle")
    log.assert_offline()
    page.close()


def test_redoc_renders_the_api_with_no_outside_request(browser: Browser, docs_url: str) -> None:
    title = httpx.get(f"{docs_url}/openapi.json").json()["info"]["title"]
    page, log = open_page(browser, f"{docs_url}/redoc")
    page.locator("h1", has_text=title).wait_for(timeout=30_000)
    # ReDoc lists the operations in its side menu once the document is parsed.
    assert page.locator("[role=menuitem]").count() > 10
    page.wait_for_load_state("networkidle")
    log.assert_offline()
    page.close()


@pytest.fixture
def dev_server() -> Iterator[str]:
    """A stand-in for a front end's dev server (Vite, say): a page on another loopback port."""

    class DevPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>dev server</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), DevPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_dev_server_page_on_another_loopback_port_calls_the_local_api(
    browser: Browser, docs_url: str, dev_server: str
) -> None:
    page = browser.new_page()
    page.goto(dev_server)
    # A PUT with these headers is preflighted; then the answer's status and an exposed header are readable.
    status, request_id = page.evaluate(
        """async (api) => {
            const response = await fetch(api + "/subscribers/sub-1", {
                method: "PUT",
                headers: {"Authorization": "Bearer not-a-token", "Content-Type": "application/json", "If-Match": '"1"'},
                body: "{}",
            });
            return [response.status, response.headers.get("X-Request-ID")];
        }""",
        docs_url,
    )
    assert status == 401
    assert request_id
    page.close()
