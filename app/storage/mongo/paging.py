from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.storage.base import CursorRejected
from app.storage.cursor import CursorCodec


def find_page(
    collection: Any,
    query: Mapping[str, Any],
    *,
    order_field: str,
    descending: bool,
    limit: int,
    cursor: str | None,
    scope: str,
    cursors: CursorCodec,
) -> tuple[list[dict[str, Any]], str | None]:
    """Keyset pagination on one unique, sortable field (no skip/offset, so pages stay O(limit))."""
    criteria = dict(query)
    if cursor:
        after = cursors.decode(scope, cursor).get("after")
        if not isinstance(after, str):
            raise CursorRejected()
        bound = {"$lt" if descending else "$gt": after}
        existing = criteria.get(order_field)
        # Keep a range the query already puts on the order field (e.g. a date window).
        criteria[order_field] = {**existing, **bound} if isinstance(existing, dict) else bound
    documents = list(collection.find(criteria).sort(order_field, -1 if descending else 1).limit(limit + 1))
    if len(documents) <= limit:
        return documents, None
    page = documents[:limit]
    return page, cursors.encode(scope, {"after": page[-1][order_field]})
