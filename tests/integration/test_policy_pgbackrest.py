"""The pgBackRest policy checks on a real repository (posix, repo1-retention-full=2, diff=2, no cipher):
retention read from the stanza's own config, set ages and the cipher from `pgbackrest info`. A retention
below the policy FAILS naming the setting and both values; an unencrypted repository fails when the policy
requires a cipher; what meets the policy passes. The repository is byte-for-byte the same afterwards."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from restoredrill import pgtools
from restoredrill.config import PgBackRestPolicy
from restoredrill.evidence import new_run_id
from restoredrill.layers import pgbackrest_policy
from restoredrill.layers.pgbackrest_repo import PgBackRest
from restoredrill.proc import RunAs
from restoredrill.targets.local import LocalInstance
from tests.conftest import run_cli, tree_digest
from tests.pgbackrest_support import Repo, drill_config

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pgbackrest-plain")]


def test_settings_and_info_of_a_real_repository(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    settings, origin = pgbackrest_policy.read_settings(repo.config, repo.stanza, [], {})
    assert settings == {"repo1-retention-full": "2", "repo1-retention-diff": "2"}
    assert pgbackrest_policy.retention(settings, origin, PgBackRestPolicy(retention_full=2)).outcome == "passed"
    below = pgbackrest_policy.retention(settings, origin, PgBackRestPolicy(retention_full=4, retention_diff=3))
    assert below.outcome == "failed"
    assert "repo1-retention-full=2 keeps 2 full set(s), below the policy's 4" in below.detail
    assert "repo1-retention-diff=2 keeps 2 diff set(s), below the policy's 3" in below.detail
    assert str(repo.config) in below.detail
    (root / "work").mkdir(exist_ok=True)
    info = PgBackRest(
        repo.stanza,
        config=repo.config,
        options=[],
        cipher_pass_env=None,
        workdir=root / "work",
        run_as=RunAs.for_server(None),
    ).info()
    now = datetime.now(UTC)
    assert pgbackrest_policy.newest_age(info, now, ("full",), 86400, "policy_full_age").outcome == "passed"
    stale = pgbackrest_policy.newest_age(info, now, ("full",), 0.5, "policy_full_age")
    assert stale.outcome == "failed"
    assert "no full backup is being taken on schedule" in stale.detail
    clear = pgbackrest_policy.encryption(info)
    assert clear.outcome == "failed"
    assert "the repository cipher is none" in clear.detail


def test_retention_below_policy_fails_the_drill_naming_it(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    drill_config(
        root,
        repo,
        targets='recovery_targets = ["latest"]',
        extra="[databases.postgres.pgbackrest.policy]\nretention_full = 4\nretention_diff = 2\n"
        'full_max_age = "7d"\ndiff_max_age = "1d"\nencryption = false\n',
    )
    before = tree_digest(repo.folder / "repo")
    result = run_cli("run", "--config", str(root / "drills.toml"), workdir=root / "work", timeout=300)
    assert result.returncode == 1, result.output
    assert tree_digest(repo.folder / "repo") == before, "a drill must never write to the repository"
    (path,) = (root / "reports" / "evidence").glob("*.json")
    record = json.loads(path.read_text())
    found = {c["name"]: c for c in record["checks"] if c["name"].startswith("policy_")}
    assert set(found) == {"policy_retention", "policy_full_age", "policy_diff_age"}
    assert found["policy_retention"]["outcome"] == "failed"
    assert "repo1-retention-full=2 keeps 2 full set(s), below the policy's 4" in found["policy_retention"]["detail"]
    assert found["policy_full_age"]["outcome"] == found["policy_diff_age"]["outcome"] == "passed"
    assert record["verdict"] == "failed"
    assert record["reason"].startswith("policy_retention: ")  # every data check passed: the policy is the finding
    storage = record["storage"]
    assert storage["storage"].startswith("block volume")
    wal = sum(p.stat().st_size for p in repo.segments())
    assert storage["size_bytes"] > wal > 0
    assert "Traceback" not in result.output


def _wait_for(conn: psycopg.Connection, sql: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not conn.execute(sql).fetchone()[0]:  # type: ignore[index]
        assert time.monotonic() < deadline, f"timed out waiting for: {sql}"
        time.sleep(0.1)


def test_archive_health_on_a_real_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source that archives passes; once its archive_command fails, the check fails naming the failed
    segment and the failed_count that rose since the last drill. The connection is read-only."""
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    settings = {"wal_level": "replica", "archive_mode": "on", "archive_command": "'true'"}
    with LocalInstance(bindir, run_id=new_run_id(), settings=settings, label="archiver-source") as source:
        assert source.connection is not None
        monkeypatch.setenv(
            "SOURCE_DSN", source.connection.conninfo("postgres") + f" password={source.connection.password}"
        )
        with source.connection.connect("postgres") as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS i")
            conn.execute("SELECT pg_switch_wal()")
            _wait_for(conn, "SELECT archived_count > 0 FROM pg_stat_archiver")
            healthy, failed_before = pgbackrest_policy.archive_health("SOURCE_DSN", 3600, None)
            assert healthy.outcome == "passed", healthy.detail
            assert "failed_count 0" in healthy.detail
            conn.execute("ALTER SYSTEM SET archive_command = 'false'")
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("SELECT pg_switch_wal()")
            _wait_for(conn, "SELECT failed_count > 0 FROM pg_stat_archiver")
        broken, failed_now = pgbackrest_policy.archive_health("SOURCE_DSN", 3600, failed_before)
        assert broken.outcome == "failed"
        assert "archiving is failing:" in broken.detail
        assert f"failed_count rose from 0 to {failed_now}" in broken.detail
        stale, _ = pgbackrest_policy.archive_health("SOURCE_DSN", 0, None)
        assert "the last archived WAL" in stale.detail
    monkeypatch.setenv("SOURCE_DSN", "host=127.0.0.1 port=1 connect_timeout=2")
    refused, _ = pgbackrest_policy.archive_health("SOURCE_DSN", 3600, None)
    assert refused.outcome == "error"
    assert refused.detail.startswith("could not verify: the source refused")
