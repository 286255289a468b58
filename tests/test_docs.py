"""API docs are served by the app itself: no CDN, and they can be switched off."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.main import create_app
from tests.support import make_settings


def test_swagger_and_redoc_load_only_local_assets() -> None:
    client = TestClient(create_app(make_settings()))
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert urls, html
        assert all(url.startswith("/") for url in urls), urls
        assert "cdn" not in html.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 10_000
        # The one outside address the bundles load on their own (app/docs_pages.py); the browser
        # check is tests/test_docs_offline.py.
        assert b"cdn.redoc.ly" not in response.content


def test_docs_can_be_turned_off() -> None:
    client = TestClient(create_app(make_settings(docs_enabled=False)))
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert client.get(path).status_code == 404
    assert client.get("/health").status_code == 200
