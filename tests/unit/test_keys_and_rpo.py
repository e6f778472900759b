"""Dump key layout, the newest dump (by key, not LastModified), and the RPO it implies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from restoredrill.layers.logical_keys import dump_key, dumps_of, parse_key, recovery_point

PREFIX = "postgres/logical/"


def test_key_round_trip_with_dashes_in_the_database_name() -> None:
    taken = datetime(2026, 11, 3, 2, 15, 9, tzinfo=UTC)
    key = dump_key(PREFIX, "my-app-db", taken)
    assert key == "postgres/logical/2026-11-03/my-app-db-2026-11-03T02-15-09.dump"
    parsed = parse_key(PREFIX, key, 10)
    assert parsed is not None
    assert (parsed.database, parsed.taken_at, parsed.size) == ("my-app-db", taken, 10)
    assert parsed.manifest_key == "postgres/logical/2026-11-03/my-app-db-2026-11-03T02-15-09.manifest.json"


def test_keys_outside_the_layout_are_ignored() -> None:
    for key in [
        "postgres/logical/2026-11-03/app-2026-11-03T02-15-09.manifest.json",
        "postgres/logical/2026-11-04/app-2026-11-03T02-15-09.dump",  # folder and time disagree
        "postgres/logical/app-2026-11-03T02-15-09.dump",
        "postgres/logical/2026-13-03/app-2026-13-03T02-15-09.dump",
        "other/2026-11-03/app-2026-11-03T02-15-09.dump",
    ]:
        assert parse_key(PREFIX, key) is None, key


def test_newest_is_chosen_by_key_time_and_database() -> None:
    objects = [
        ("postgres/logical/2026-11-03/app-2026-11-03T02-00-00.dump", 1),
        ("postgres/logical/2026-11-05/app-2026-11-05T02-00-00.dump", 1),
        ("postgres/logical/2026-11-06/app-billing-2026-11-06T02-00-00.dump", 1),
        ("postgres/logical/2026-11-04/app-2026-11-04T23-59-59.dump", 1),
    ]
    dumps = dumps_of(PREFIX, "app", objects)
    assert [d.taken_at.day for d in dumps] == [3, 4, 5]
    assert dumps[-1].key.endswith("2026-11-05T02-00-00.dump")


def test_recovery_point_age_and_largest_gap_inside_the_window() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    days = [40, 10, 9, 7, 6, 1]  # 40 is outside a 30-day window; 9 -> 7 is the missing day
    dumps = dumps_of(PREFIX, "app", [(dump_key(PREFIX, "app", now - timedelta(days=d)), 1) for d in days])
    point = recovery_point(dumps, now, retention_days=30)
    assert point.newest_age_s == 86400
    assert point.largest_gap_s == 5 * 86400
    assert point.gap_from == now - timedelta(days=6)
    assert point.gap_to == now - timedelta(days=1)
    assert point.dumps_in_window == 5


@given(st.lists(st.integers(min_value=0, max_value=60 * 86400), min_size=1, max_size=30, unique=True))
def test_largest_gap_is_the_max_of_consecutive_differences(offsets: list[int]) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    times = sorted(now - timedelta(seconds=o) for o in offsets)
    dumps = dumps_of(PREFIX, "db", [(dump_key(PREFIX, "db", t), 1) for t in times])
    point = recovery_point(dumps, now, retention_days=90)
    expected = max(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=None)
    assert point.largest_gap_s == expected
    assert point.newest_age_s == (now - times[-1]).total_seconds()
