"""The raw-store helpers name the backends they know and refuse any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from app.storage.base import Store
from tests.subscribers.support import assert_consistent, raw_snapshot


class _ThirdBackend:
    """A store of a backend the helpers were not taught: not DynamoDB, yet not MongoDB either."""

    backend = "third"


@pytest.mark.parametrize("inspect", [raw_snapshot, assert_consistent])
def test_a_backend_the_helpers_do_not_know_is_refused_by_name(inspect: Callable[[Store], Any]) -> None:
    with pytest.raises(TypeError, match="'third'"):
        inspect(cast(Store, _ThirdBackend()))
