from __future__ import annotations

from datetime import UTC, datetime

from app.timeutil import sortable


def test_sortable_text_is_fixed_width_so_its_order_is_time_order_in_every_year() -> None:
    """strftime's %Y leaves years before 1000 unpadded on Linux ("139-12-05..." sorts after "1238-...")."""
    times = [datetime(year, 12, 5, tzinfo=UTC) for year in (1, 139, 999, 1000, 1238, 2026, 9999)]
    texts = [sortable(moment) for moment in times]
    assert {len(text) for text in texts} == {len("2026-12-05T00:00:00.000000Z")}
    assert sorted(texts) == texts
    assert texts[1] == "0139-12-05T00:00:00.000000Z"
