"""The manifest's content-hash algorithm: written, read back, defaulted for manifests written before it was
recorded, chosen per source server, and refused (could not verify, never passed) when unknown. The drills
that compute the sums for real are in tests/integration/test_content_algorithms.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from restoredrill import checks
from restoredrill import manifest as manifest_mod
from restoredrill.checks import Restored
from restoredrill.manifest import HASHTEXTEXTENDED_SUM, MD5_64_SUM, Manifest
from restoredrill.targets.connection import Connection


def manifest(**fields: Any) -> Manifest:
    return Manifest(
        "shop",
        "2026-01-01T00:00:00+00:00",
        "15.1",
        {"public.users": 2000},
        {"columns": ["public.users.id integer NOT NULL"]},
        content={"public.users": "-1234567890123456789012"},
        content_max_bytes=1024**3,
        **fields,
    )


def test_the_algorithm_round_trips_and_marks_the_format() -> None:
    new = manifest(content_algorithm=HASHTEXTEXTENDED_SUM)
    data = json.loads(new.to_json())
    assert data["format"] == "restoredrill-manifest/2"
    assert data["content_algorithm"] == HASHTEXTEXTENDED_SUM
    assert Manifest.from_json(new.to_json()) == new

    md5 = manifest(content_algorithm=MD5_64_SUM)
    data = json.loads(md5.to_json())
    # still readable by releases that know only /1: they compute md5-64-sum, which is what it holds
    assert data["format"] == "restoredrill-manifest/1"
    assert data["content_algorithm"] == MD5_64_SUM
    assert Manifest.from_json(md5.to_json()) == md5


def test_a_manifest_written_before_the_field_is_md5() -> None:
    """Exactly what the release before wrote: format /1, no content_algorithm."""
    data = json.loads(manifest(content_algorithm=MD5_64_SUM).to_json())
    del data["content_algorithm"]
    old = Manifest.from_json(json.dumps(data, indent=1, sort_keys=True))
    assert old.content_algorithm == MD5_64_SUM
    assert old.content == {"public.users": "-1234567890123456789012"}


def test_a_version_2_manifest_must_name_its_algorithm_and_unknown_formats_are_refused() -> None:
    data = json.loads(manifest(content_algorithm=HASHTEXTEXTENDED_SUM).to_json())
    del data["content_algorithm"]
    with pytest.raises(KeyError, match="content_algorithm"):
        Manifest.from_json(json.dumps(data))
    data["format"] = "restoredrill-manifest/3"
    with pytest.raises(ValueError, match="unknown manifest format 'restoredrill-manifest/3'"):
        Manifest.from_json(json.dumps(data))


def test_the_shown_sql_is_the_query_each_algorithm_runs() -> None:
    for algorithm, query in manifest_mod.CONTENT_HASH_SQL.items():
        assert manifest_mod.content_hash_sql_shown(algorithm) == query.format("<each table>")
    assert "hashtextextended(t::text" in manifest_mod.content_hash_sql_shown(HASHTEXTEXTENDED_SUM)
    assert "md5(t::text)" in manifest_mod.content_hash_sql_shown(MD5_64_SUM)


class ProbeOnly:
    """A connection that answers the hash probe only (None: must not be asked at all)."""

    def __init__(self, probe: int | None) -> None:
        self.probe = probe

    def execute(self, query: str, params: tuple[object, ...] = ()) -> ProbeOnly:
        assert self.probe is not None, "the server was asked, it must not be"
        assert query == manifest_mod.HASH_PROBE_SQL
        assert params == (manifest_mod.HASH_PROBE,)
        return self

    def fetchone(self) -> tuple[int]:
        assert self.probe is not None
        return (self.probe,)


def algorithm_for(major: int, probe: int | None) -> str:
    return manifest_mod.content_algorithm_for(cast(psycopg.Connection[Any], ProbeOnly(probe)), major)


def test_the_backup_job_uses_hashtextextended_only_where_it_gives_the_little_endian_values() -> None:
    little = manifest_mod.HASH_PROBE_LITTLE_ENDIAN
    assert algorithm_for(15, little) == HASHTEXTEXTENDED_SUM
    assert algorithm_for(11, little) == HASHTEXTEXTENDED_SUM
    assert algorithm_for(15, little + 1) == MD5_64_SUM  # another byte order: portable md5 instead
    assert algorithm_for(10, None) == MD5_64_SUM  # no hashtextextended before 11: not even asked


def restored(expected: Manifest) -> Restored:
    return Restored(
        connection=cast(Connection, None),  # an unknown algorithm is refused before connecting
        dbname="shop",
        bindir=Path("/nonexistent"),
        listing=None,
        manifest=expected,
        taken_at=datetime.now(UTC),
        rpo_s=0.0,
        restore_returncode=0,
        restore_errors=[],
    )


def test_an_unknown_algorithm_could_not_verify_and_names_it() -> None:
    db = restored(manifest(content_algorithm="sha3-xor"))
    record = checks.run_check("manifest_content", checks.manifest_content, db)
    assert record.outcome == "error"
    assert record.detail.startswith("the manifest's content hashes use algorithm 'sha3-xor', which this")
    assert "could not be compared" in record.detail


class ServerOfOtherByteOrder:
    """A restored copy whose hashtextextended gives other values (as a big-endian server would)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def connect(self, _dbname: str) -> ServerOfOtherByteOrder:
        return self

    def __enter__(self) -> ServerOfOtherByteOrder:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def execute(self, query: object, _params: tuple[object, ...] = ()) -> ServerOfOtherByteOrder:
        self.asked.append(str(query))
        return self

    def fetchone(self) -> tuple[int]:
        assert self.asked[-1] == manifest_mod.HASH_PROBE_SQL, f"only the probe may run, not {self.asked[-1]}"
        return (manifest_mod.HASH_PROBE_LITTLE_ENDIAN ^ 1,)


def test_a_server_hashing_otherwise_could_not_verify_rather_than_call_every_table_altered() -> None:
    db = restored(manifest(content_algorithm=HASHTEXTEXTENDED_SUM))
    server = ServerOfOtherByteOrder()
    db.connection = cast(Connection, server)
    record = checks.run_check("manifest_content", checks.manifest_content, db)
    assert record.outcome == "error", record.detail
    assert record.detail.startswith("this server's hashtextextended differs from the one the backup job used")
    assert "a big-endian machine?" in record.detail
    assert record.sql == "SELECT hashtextextended('restoredrill hashtextextended probe' COLLATE \"C\", 0)"
    assert not any("FROM ONLY" in q for q in server.asked), "no table was compared"
