"""Process-wide state: settings, the signing secret and the store, each created once.

Lambda reuses the process across invocations, so the store (and its client) is built on first
use and then kept; uvicorn builds it at start-up through the lifespan. Nothing request-scoped
lives here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from app.config import Settings
from app.secrets import resolve_signing_secret
from app.storage.base import Store

if TYPE_CHECKING:
    from app.storage.blobs import BlobStore

logger = logging.getLogger("app.runtime")
StoreReadyHook = Callable[["Runtime"], None]
T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._store = store
        self._secret: bytes | None = None
        self._lock = threading.RLock()
        self.on_store_ready: list[StoreReadyHook] = []
        self._memo: dict[str, Any] = {}

    @property
    def signing_secret(self) -> bytes:
        if self._secret is None:
            self._secret = resolve_signing_secret(self.settings)
        return self._secret

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from app.storage.factory import create_store

                    store = create_store(self.settings, self.signing_secret)
                    self._store = store
                    for hook in self.on_store_ready:
                        hook(self)
        return self._store

    def memo(self, name: str, factory: Callable[[], T]) -> T:
        """A per-process singleton (e.g. the password hasher), built on first use."""
        if name not in self._memo:
            with self._lock:
                if name not in self._memo:
                    self._memo[name] = factory()
        value: T = self._memo[name]
        return value

    def provide(self, name: str, value: Any) -> None:
        """Set a per-process singleton up front (tests choose e.g. an inline job dispatcher)."""
        with self._lock:
            self._memo[name] = value

    @property
    def blobs(self) -> BlobStore:
        """Job files: S3 when UPLOADS_BUCKET is set, else a folder under DATA_DIR."""
        return self.memo("blobs", self._create_blobs)

    def _create_blobs(self) -> BlobStore:
        from app.storage.blobs import create_blob_store

        return create_blob_store(self.settings)

    def close(self) -> None:
        for closeable in list(self._memo.values()):
            if hasattr(closeable, "shutdown"):
                closeable.shutdown()
        if self._store is not None:
            self._store.close()
            self._store = None
