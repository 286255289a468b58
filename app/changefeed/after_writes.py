"""The HTTP side of "relayed right after the commit": once a request that may have written has
been answered, its events are relayed (`drain.after_commit`).

Any answer, not only a success: a refused login can lock an account (`user.locked`). Inline mode
relays before the request's task ends (Lambda: before the invocation returns, after the response
is built); background mode only wakes the relay thread.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.changefeed.drain import after_commit

_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class RelayAfterWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] not in _READ_ONLY:
            # A thread, not the event loop: the drain calls the store and consumers synchronously.
            await run_in_threadpool(after_commit, scope["app"].state.runtime)
