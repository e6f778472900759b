"""Pure pgBackRest logic: WAL names and gaps, verify output, PITR targets, restore error classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restoredrill import proc
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.layers.pgbackrest_repo import parse_verify
from restoredrill.layers.physical import (
    _restore_failure,
    last_commit_before_unreached_target,
    resolve_target,
    target_text,
)
from restoredrill.layers.wal import Segment, find_gaps, parse_segment


def test_segment_names_round_trip_across_log_boundaries() -> None:
    assert parse_segment("0000000100000001000000FF-3f2a.lz4") == Segment(1, 0x1FF)
    assert parse_segment("000000020000000000000003") == Segment(2, 3)
    assert Segment(1, 0x100).name() == "000000010000000100000000"
    for name in ("00000001000000000000000A.00000028.backup", "00000002.history", "archive.info"):
        assert parse_segment(name) is None, name


def test_gaps_are_found_per_timeline_and_from_the_oldest_full_backup() -> None:
    segments = [Segment(1, n) for n in (3, 4, 5, 8, 9)] + [Segment(2, n) for n in (9, 10)]
    gaps = find_gaps(segments, start=Segment(1, 2))
    assert [(g.first.name(), g.last.name()) for g in gaps] == [
        ("000000010000000000000002", "000000010000000000000002"),
        ("000000010000000000000006", "000000010000000000000007"),
    ]
    assert gaps[1].describe() == "2 WAL segments 000000010000000000000006..000000010000000000000007 are missing"
    assert find_gaps([Segment(1, n) for n in range(3, 7)], start=Segment(1, 3)) == []


@given(st.sets(st.integers(min_value=0, max_value=600), min_size=1))
def test_every_missing_number_is_in_exactly_one_gap(numbers: set[int]) -> None:
    segments = [Segment(1, n) for n in numbers]
    missing = set(range(min(numbers), max(numbers) + 1)) - numbers
    covered = [n for g in find_gaps(segments) for n in range(g.first.number, g.last.number + 1)]
    assert sorted(covered) == sorted(missing)


VERIFY_OK = """2026-11-26 04:28:57.935 P00   INFO: stanza: demo
                                    status: ok
                                      archiveId: 15-1, total WAL checked: 18, total valid WAL: 18
                                        missing: 0, checksum invalid: 0, size invalid: 0, other: 0
                                      backup: 20261126-042716F, status: valid, total files checked: 970
                                        missing: 0, checksum invalid: 0, size invalid: 0, other: 0"""


def test_verify_output_is_read_for_what_it_says_not_its_exit_code() -> None:
    assert parse_verify(VERIFY_OK) == []
    broken = (
        VERIFY_OK.replace("status: ok", "status: error")
        .replace("backup: 20261126-042716F, status: valid", "backup: 20261126-042716F, status: invalid")
        .replace(
            "missing: 0, checksum invalid: 0, size invalid: 0, other: 0\n                                      backup",
            "missing: 0, checksum invalid: 1, size invalid: 0, other: 0\n                                      backup",
        )
    )
    problems = parse_verify(broken)
    assert "verify status: error" in problems
    assert "archiveId: 15-1: missing: 0, checksum invalid: 1, size invalid: 0, other: 0" in problems
    assert any(p.startswith("backup: 20261126-042716F, status: invalid") for p in problems)


def test_pitr_targets_from_iso_times_and_offsets() -> None:
    newest = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert resolve_target("1h", newest) == newest - timedelta(hours=1)
    assert resolve_target("2026-11-26T10:30:00Z", newest) == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    assert resolve_target("2026-11-26 10:30:00", newest) == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match="neither an ISO time nor a duration"):
        resolve_target("yesterday", newest)
    assert target_text(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02 03:04:05.000006+00"


def _result(stderr: str, code: int = 1) -> proc.Completed:
    return proc.Completed(("pgbackrest",), code, "", stderr, 0.1)


@pytest.mark.parametrize(
    ("stderr", "kind", "words"),
    [
        ("ERROR: [075]: no backup set found to restore", CouldNotVerify, "wrong cipher passphrase"),
        (
            "ERROR: [075]: unable to find backup set with stop time less than '2026-11-26'",
            BackupDefect,
            "no backup set is old enough",
        ),
        ("ERROR: [032]: lz4 error: ERROR_contentChecksum_invalid", BackupDefect, "corrupt"),
        ("ERROR: [039]: HostConnectError: unable to connect to 'localhost:1'", CouldNotVerify, "unreachable"),
    ],
)
def test_restore_failures_are_classified(stderr: str, kind: type, words: str) -> None:
    error = _restore_failure(_result(stderr))
    assert isinstance(error, kind)
    assert words in str(error)


_UNREACHED_LOG = [
    "LOG:  starting point-in-time recovery to 2026-12-02 17:00:10+00",
    "LOG:  redo starts at 0/4000028",
    "LOG:  redo done at 0/7000060 system usage: CPU: user: 0.00 s",
    "LOG:  last completed transaction was at log time 2026-12-02 17:00:05.25+00",
    "FATAL:  recovery ended before configured recovery target was reached",
]


def test_a_target_after_the_last_commit_is_recognised_only_when_replay_read_the_whole_archive() -> None:
    target = datetime(2026, 12, 2, 17, 0, 10, tzinfo=UTC)
    last = last_commit_before_unreached_target(_UNREACHED_LOG, target, archive_end=Segment(1, 7))
    assert last == datetime(2026, 12, 2, 17, 0, 5, 250000, tzinfo=UTC)
    # Replay stopped in segment 7 but the archive goes on to 9: WAL is missing, that stays a defect.
    assert last_commit_before_unreached_target(_UNREACHED_LOG, target, archive_end=Segment(1, 9)) is None
    # The last commit after the target cannot be "nothing committed after it".
    early = datetime(2026, 12, 2, 17, 0, 1, tzinfo=UTC)
    assert last_commit_before_unreached_target(_UNREACHED_LOG, early, archive_end=Segment(1, 7)) is None
    # Any other ending is not this case.
    other = [ln for ln in _UNREACHED_LOG if "FATAL" not in ln] + ["FATAL:  could not locate required checkpoint"]
    assert last_commit_before_unreached_target(other, target, archive_end=Segment(1, 7)) is None
