"""The API docs pages, Swagger UI at /docs and ReDoc at /redoc, which make no outside request.

fastapi-offline serves both pages' assets from the app (no CDN): the portal may run on a locked-down
network, and the pages still work behind a stage prefix. One request was left: ReDoc's side menu
always shows Redocly's logo, loaded from Redocly's CDN, and ReDoc has no option to leave it out.
The ReDoc bundle is served here with that address emptied: ReDoc then drops the image, as it does
when the logo fails to load, and keeps the "API docs by Redocly" link. tests/test_docs_offline.py
opens both pages in Chromium with the network cut.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS_URL = "/docs/assets"
REDOC_BUNDLE = "redoc.standalone.js"
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def offline_docs_app(**options: Any) -> FastAPI:
    app = FastAPIOffline(docs_url="/docs", redoc_url="/redoc", static_url=ASSETS_URL, **options)
    # First, so it answers before the mount that serves the package's other assets.
    app.router.routes.insert(0, Route(f"{ASSETS_URL}/{REDOC_BUNDLE}", _redoc_bundle, include_in_schema=False))
    return app


async def _redoc_bundle(request: Request) -> Response:
    return Response(_redoc_without_cdn_logo(), media_type="text/javascript")


@cache
def _redoc_without_cdn_logo() -> bytes:
    bundle = Path(fastapi_offline.__file__).with_name("static") / REDOC_BUNDLE
    return bundle.read_bytes().replace(REDOC_CDN_LOGO, b"")
