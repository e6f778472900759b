"""Durations, redaction, pg_restore output parsing, structure comparison (exit codes: test_verdicts.py)."""

from __future__ import annotations

import pytest

from restoredrill import proc
from restoredrill.durations import format_duration, parse_duration
from restoredrill.layers.logical import restore_messages
from restoredrill.manifest import compare_structure
from restoredrill.pgtools import parse_listing


@pytest.mark.parametrize(
    ("text", "seconds"), [("26h", 93600), ("90m", 5400), ("1d12h", 129600), ("45s", 45), ("1.5h", 5400), (30, 30)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "26", "26x", "1h 2", "-1h", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|not a"):
        parse_duration(text)  # type: ignore[arg-type]


def test_format_duration() -> None:
    assert format_duration(12.34) == "12.3s"
    assert format_duration(93784) == "1d2h"
    assert format_duration(None) == "n/a"


def test_redaction_of_registered_secrets_and_known_patterns() -> None:
    proc.register_secret("s3cr3t-Passw0rd")
    text = (
        "connect host=x password=hunter22 failed; PGPASSWORD=abcdef; s3cr3t-Passw0rd; postgresql://bob:topsecret@db/x"
    )
    redacted = proc.redact(text)
    for secret in ("hunter22", "abcdef", "s3cr3t-Passw0rd", "topsecret", "UrlPass9"):
        assert secret not in redacted
    assert "password=***" in redacted
    assert "postgresql://bob:***@db/x" in redacted


def test_restore_messages_finds_errors_even_with_exit_code_zero() -> None:
    stderr = (
        "pg_restore: while PROCESSING TOC:\n"
        'pg_restore: error: could not execute query: ERROR:  role "app" does not exist\n'
        "pg_restore: warning: errors ignored on restore: 1\n"
    )
    assert restore_messages(stderr) == ['could not execute query: ERROR:  role "app" does not exist']
    assert restore_messages("pg_restore: warning: errors ignored on restore: 3\n") == ["pg_restore ignored 3 error(s)"]
    assert restore_messages("") == []


LISTING = """;
; Archive created at 2026-11-26 04:09:49 UTC
;     dbname: shop
;     TOC Entries: 40
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
;
; Selected TOC Entries:
;
216; 1259 16390 TABLE public orders postgres
217; 1259 16399 MATERIALIZED VIEW public daily_revenue postgres
3360; 0 16390 TABLE DATA public orders postgres
3370; 0 16399 MATERIALIZED VIEW DATA public daily_revenue postgres
3200; 1259 16400 INDEX public orders_created_at_idx postgres
"""


def test_parse_listing_header_and_entries() -> None:
    listing = parse_listing(LISTING)
    assert listing.server_major == 15
    assert listing.archive_version == "1.14-0"
    assert listing.database == "shop"
    assert listing.tables() == [("public", "orders")]
    assert listing.matviews() == [("public", "daily_revenue")]
    assert {e.kind for e in listing.entries} >= {"TABLE DATA", "MATERIALIZED VIEW DATA", "INDEX"}


def test_compare_structure_names_missing_and_unexpected_objects() -> None:
    expected = {"indexes": ["CREATE INDEX a ON t (x)", "CREATE INDEX b ON t (y)"], "extensions": ["plpgsql"]}
    actual = {"indexes": ["CREATE INDEX a ON t (x)"], "extensions": ["plpgsql", "postgis"]}
    assert compare_structure(expected, actual) == [
        "unexpected extension: postgis",
        "missing index: CREATE INDEX b ON t (y)",
    ]


def test_a_zombie_owner_counts_as_dead_for_the_janitor() -> None:
    """A killed drill process nobody reaped yet (its parent died too) must not keep its leftovers alive."""
    import os
    import subprocess
    import time
    from pathlib import Path

    from restoredrill.targets.local import process_alive

    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    for _ in range(100):  # until it has exited but is not reaped: a zombie
        if stat.read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert process_alive(child.pid) is False, "an exited, unreaped process is not an owner"
    child.wait()
    assert process_alive(child.pid) is False
    assert process_alive(os.getpid()) is True
