from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from app.storage.base import CursorRejected, Page
from app.storage.cursor import CursorCodec

T = TypeVar("T")


def find_page(
    collection: Any,
    query: Mapping[str, Any],
    read: Callable[[dict[str, Any]], T],
    *,
    limit: int,
    cursor: str | None,
    scope: str,
    cursors: CursorCodec,
    order_field: str = "_id",
    descending: bool = False,
) -> Page[T]:
    """Keyset pagination on one unique, sortable field (no skip/offset, so pages stay O(limit));
    `read` makes each document the record it holds."""
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
        return Page([read(document) for document in documents])
    page = documents[:limit]
    return Page([read(document) for document in page], cursors.encode(scope, {"after": page[-1][order_field]}))
