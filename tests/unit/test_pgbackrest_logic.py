"""Pure pgBackRest logic: WAL names and gaps, verify output, PITR targets, restore error classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restoredrill import proc
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.layers.pgbackrest import (
    _restore_failure,
    last_commit_before_unreached_target,
    random_target,
    resolve_target,
    target_text,
)
from restoredrill.layers.pgbackrest_errors import classify, kinds_in, wrong_key
from restoredrill.layers.pgbackrest_repo import parse_verify, restored_set
from restoredrill.layers.replay import ReplayEnd, format_lsn, parse_lsn, redo_done_lsn, stop_cause, stopping_time
from restoredrill.layers.wal import Segment, find_gaps, parse_segment
from restoredrill.targets.recovered import replay_stop_sentence


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
        ("ERROR: [075]: no backup set found to restore", CouldNotVerify, "BackupSetInvalidError"),
        (
            "ERROR: [055]: raised from local-1 protocol: unable to open missing file '/r/backup/demo/"
            "20261202-172421F_20261202-172440I/pg_data/base/5/16391.lz4' for read",
            BackupDefect,
            "FileMissingError",
        ),
        (
            "WARN: repo1: [FileMissingError] unable to load info file '/r/backup/demo/backup.info' or "
            "'/r/backup/demo/backup.info.copy':\n      FileMissingError: unable to open missing file "
            "'/r/backup/demo/backup.info' for read\nERROR: [075]: no backup set found to restore",
            BackupDefect,
            "FileMissingError",
        ),
        (
            "ERROR: [041]: unable to open file '/r/backup/demo/backup.info' for read: [13] Permission denied",
            CouldNotVerify,
            "permission denied",
        ),
        (
            "ERROR: [075]: unable to find backup set with stop time less than '2026-11-26'",
            BackupDefect,
            "no backup set is old enough",
        ),
        ("ERROR: [032]: lz4 error: ERROR_contentChecksum_invalid", BackupDefect, "corrupt"),
        ("ERROR: [049]: HostConnectError: unable to connect to 'localhost:1'", CouldNotVerify, "unreachable"),
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


def test_a_bare_no_backup_set_found_never_guesses_a_wrong_passphrase() -> None:
    error = _restore_failure(_result("ERROR: [075]: no backup set found to restore"))
    assert "passphrase" not in str(error)


_MANIFEST = (
    "ERROR: [029]: unable to load backup manifest file '/r/backup/demo/20261202-172421F_20261202-172440I/"
    "backup.manifest' or '/r/backup/demo/20261202-172421F_20261202-172440I/backup.manifest.copy':\n"
    "       FormatError: hex size 89 is not evenly divisible by 2\n"
    "       FormatError: hex size 89 is not evenly divisible by 2\n"
)


def test_a_corrupt_manifest_is_a_defect_quoting_pgbackrests_cause_whole() -> None:
    error = _restore_failure(_result(_MANIFEST, code=29))
    assert isinstance(error, BackupDefect)
    assert "(FormatError)" in str(error)
    assert str(error).endswith("FormatError: hex size 89 is not evenly divisible by 2"), str(error)


_UNDECRYPTABLE = (
    "[FormatError] unable to load info file '/r/backup/demo/backup.info' or '/r/backup/demo/backup.info.copy':\n"
    "FormatError: key/value found outside of section at line 1: \ufffd+\ufffd\x07\n"
    "FormatError: key/value found outside of section at line 1: \ufffd+\ufffd\x07\n"
)


def test_wrong_passphrase_only_where_both_info_copies_fail_to_decrypt_in_an_encrypted_repository() -> None:
    assert wrong_key(_UNDECRYPTABLE, encrypted=True)
    assert not wrong_key(_UNDECRYPTABLE, encrypted=False)
    assert isinstance(classify(_UNDECRYPTABLE, "reading", encrypted=False), BackupDefect)
    error = classify(_UNDECRYPTABLE, "reading", encrypted=True)
    assert isinstance(error, CouldNotVerify)
    assert "wrong cipher passphrase" in str(error)
    assert "\x07" not in str(error)


def test_pgbackrest_error_kinds_innermost_first() -> None:
    text = (
        "ERROR: [042]: unable to get 00000001000000000000001F:\n       repo1: 15-1/x.lz4 [FormatError] unexpected eof"
    )
    assert kinds_in(text)[:2] == ["FormatError", "FileReadError"]
    assert isinstance(classify(text, "fetching WAL"), BackupDefect)


VERIFY_FINDINGS = """2026-12-02 17:32:39.355 P01   INFO: invalid result 15-1/0000000100000000/00000001000000000000001F-b79a.lz4: [29] raised from local-1 protocol: unexpected eof in compressed data
2026-12-02 17:32:40.151 P01   INFO: invalid checksum '20261202-172421F/pg_data/base/5/2838.lz4'
2026-12-02 17:29:37.936 P01   INFO: file missing '20261202-172421F_20261202-172440I/pg_data/base/5/16391.lz4'
2026-12-02 17:32:40.224 P00   INFO: stanza: demo
                                    status: error
                                      archiveId: 15-1, total WAL checked: 33, total valid WAL: 32
                                        other: 1
                                      backup: 20261202-172421F, status: invalid, total files checked: 970, total valid files: 969
                                        checksum invalid: 1"""  # noqa: E501


def test_verify_findings_name_the_file_and_the_error_kind() -> None:
    problems = parse_verify(VERIFY_FINDINGS)
    assert problems[:3] == [
        "15-1/0000000100000000/00000001000000000000001F-b79a.lz4: unreadable (FormatError: raised from local-1 "
        "protocol: unexpected eof in compressed data)",
        "20261202-172421F/pg_data/base/5/2838.lz4: checksum invalid (ChecksumError)",
        "20261202-172421F_20261202-172440I/pg_data/base/5/16391.lz4: missing (FileMissingError)",
    ]
    assert "archiveId: 15-1: other: 1" in problems
    assert parse_verify(VERIFY_OK.replace("status: ok", "status: error\n   No usable archive.info file"))[-1] == (
        "No usable archive.info file"
    )


def test_the_restored_set_is_read_from_pgbackrests_own_line() -> None:
    out = (
        "2026-12-02 17:27:31.552 P00   INFO: repo1: restore backup set 20261202-172421F_20261202-172435D, "
        "recovery will start at 2026-12-02 17:24:35\n"
    )
    assert restored_set(out) == (
        "20261202-172421F_20261202-172435D",
        "repo1: restore backup set 20261202-172421F_20261202-172435D, recovery will start at 2026-12-02 17:24:35",
    )
    assert restored_set("INFO: restore command end") is None


_FOREIGN_LOG = [
    "LOG:  consistent recovery state reached at 0/18000108",
    "LOG:  WAL file is from different database system: WAL file database system identifier is 771, pg_control "
    "database system identifier is 772",
    "LOG:  redo done at 0/1E0003B0 system usage: CPU: user: 0.00 s",
    "LOG:  archive recovery complete",
]


def test_replay_that_stops_before_the_archive_end_names_the_segment_and_the_servers_reason() -> None:
    end = ReplayEnd(
        end_lsn=parse_lsn("0/1F000000") or 0,
        end_proof="pg_last_wal_replay_lsn()",
        archive_end=Segment(1, 0x21),
        archive_end_proof="repo-ls",
        redo_done=redo_done_lsn(_FOREIGN_LOG),
        cause=stop_cause(_FOREIGN_LOG),
    )
    assert not end.reached_archive_end
    assert end.missing_segments == 3
    sentence = end.sentence()
    assert "Replay stopped at segment 00000001000000000000001F" in sentence
    assert "WAL file is from different database system" in sentence
    assert "the archive ends at LSN 0/22000000 with segment 000000010000000000000021" in sentence
    whole = ReplayEnd(0x22000000, "p", Segment(1, 0x21), "r", None, None)
    assert whole.reached_archive_end
    assert "replay reached the end of the archive" in whole.sentence()


def test_a_missing_segment_is_named_when_the_server_gives_no_reason() -> None:
    end = ReplayEnd(0x20000000, "p", Segment(1, 0x21), "r", None, stop_cause(["LOG:  redo done at 0/1F0003B0"]))
    assert "no readable segment 000000010000000000000020" in end.sentence()


def test_pgbackrest_archive_get_errors_in_the_server_log_are_quoted_with_their_cause() -> None:
    lines = [
        "LOG:  consistent recovery state reached at 0/18000108",
        "ERROR: [042]: unable to get 00000001000000000000001F:",
        "       repo1: 15-1/x.lz4 [FormatError] unexpected eof in compressed data",
        "LOG:  redo done at 0/1E0003B0",
    ]
    assert stop_cause(lines) == (
        "ERROR: [042]: unable to get 00000001000000000000001F: repo1: 15-1/x.lz4 [FormatError] unexpected eof "
        "in compressed data"
    )


def test_the_time_of_a_recovery_stop_is_read_from_the_servers_line() -> None:
    side, at = stopping_time("recovery stopping before commit of transaction 863, time 2026-12-02 17:24:49.098851+00")
    assert side == "before"
    assert at == datetime(2026, 12, 2, 17, 24, 49, 98851, tzinfo=UTC)
    assert format_lsn(parse_lsn("1/A0") or 0) == "1/A0"


def test_a_random_target_is_inside_the_window_and_reproducible_from_its_seed() -> None:
    low = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    high = low + timedelta(minutes=10)
    picks = [random_target(seed, low, high) for seed in range(50)]
    assert all(low <= p <= high for p in picks)
    assert len(set(picks)) > 40
    assert random_target(7, low, high) == random_target(7, low, high)


def test_a_set_listed_in_backup_info_that_verify_never_saw_is_reported_missing() -> None:
    listed = ["20261126-042716F", "20261126-042716F_20261126-042730D"]
    assert parse_verify(VERIFY_OK, listed[:1]) == []
    assert parse_verify(VERIFY_OK, listed) == [
        "backup set 20261126-042716F_20261126-042730D is listed in backup.info but verify found no folder for it"
    ]


def test_a_server_that_gave_up_on_its_target_says_where_replay_ended_and_after_which_segment() -> None:
    lines = [
        'LOG:  restored log file "000000010000000000000018" from archive',
        "LOG:  redo done at 0/18000108 system usage: CPU: user: 0.00 s",
        "FATAL:  recovery ended before configured recovery target was reached",
    ]
    sentence = replay_stop_sentence(lines)
    assert "replay ended at LSN 0/18000108" in sentence
    assert "after segment 000000010000000000000018" in sentence
    assert replay_stop_sentence(["FATAL:  something else"]) == ""
