"""The pgBackRest drill end to end through the CLI, on a real repository: healthy runs pass, and it FAILS,
naming the defect, on a missing WAL segment, a corrupted file, a wrong stanza, stale WAL, or a target
before the oldest backup. The repository is byte-for-byte the same after every run."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Completed, leftovers, listening_ports_of, run_cli, tree_digest
from tests.pgbackrest_support import Repo, drill_config

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pgbackrest-plain")]


def run(root: Path) -> Completed:
    return run_cli("run", "--config", str(root / "drills.toml"), workdir=root / "work", timeout=300)


def records(root: Path) -> dict[str, dict]:
    found = {}
    for path in (root / "reports" / "evidence").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["variant"]] = record
    return found


def check(record: dict, name: str) -> dict:
    return next(c for c in record["checks"] if c["name"] == name)


def assert_clean(root: Path, result: Completed) -> None:
    assert "Traceback" not in result.output, result.output
    assert leftovers(root / "work") == []
    assert listening_ports_of(root / "work") == []


def test_healthy_repository_passes_every_recovery_target_and_is_left_untouched(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    drill_config(root, repo)
    before = tree_digest(repo.folder / "repo")
    result = run(root)
    assert result.returncode == 0, result.output
    assert tree_digest(repo.folder / "repo") == before, "a drill must never write to the repository"
    found = records(root)
    assert set(found) == {"latest", "immediate", "time"}
    for kind, record in found.items():
        assert record["verdict"] == "passed", (kind, record["reason"])
        assert check(record, "archive_mode_off")["outcome"] == "passed"
        assert check(record, "replay_proof")["outcome"] == "passed"
        assert record["stages"]["restore_s"] > 0
        assert record["stages"]["recovery_s"] > 0
        assert record["rto_s"] >= record["stages"]["restore_s"]
        tables = {t["table"]: t for t in record["largest_tables"]}  # pg_stat counters do not survive: counted
        assert tables["public.ledger"]["rows"] > 0, (kind, tables)
        assert tables["public.ledger"]["rows_estimated"] is False
    latest = found["latest"]
    assert [s["type"] for s in latest["backup_sets"]] == ["full", "diff", "incr"]
    assert {"label", "start", "stop", "wal_start", "wal_stop", "size_bytes", "database_version"} <= set(
        latest["backup_sets"][0]
    )
    assert check(latest, "wal_continuity")["outcome"] == "passed"
    assert check(latest, "pgbackrest_verify")["outcome"] == "passed"
    assert "recovery stopping before commit" in check(found["time"], "recovery")["detail"]
    assert "recovery stopped at the target" in check(found["time"], "recovery")["detail"]
    assert "the set's stop LSN was reached" in check(found["immediate"], "recovery")["detail"]
    assert "replay reached the end of the archive" in check(latest, "recovery")["detail"]
    replay = latest["replay"]
    assert replay["replay_end_segment"] == replay["archive_end_segment"] == latest["rpo_detail"]["newest_wal"]
    assert "pg_last_wal_replay_lsn()" in replay["replay_end_proof"]
    assert any("redo done at" in line for line in replay["server_log"])
    labels = {s["label"]: s for s in latest["backup_sets"]}
    for record in found.values():  # the set pgBackRest says it restored, with its type and stop time
        restored = record["replay"]["restored_set"]
        assert restored["proof"].startswith(f"pgbackrest restore: repo1: restore backup set {restored['label']}")
        assert record["backup"]["id"] == restored["label"]
        assert restored["type"] == labels[restored["label"]]["type"]
        assert restored["stop"] == labels[restored["label"]]["stop"]
    assert "consistency" in check(found["immediate"], "recovery")["detail"]
    assert_clean(root, result)


def test_missing_wal_segment_fails_pitr_and_the_silent_replay_to_end(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    segments = repo.segments()
    victim = segments[-4]  # inside the 8 s written after the newest set, before the PITR target
    victim.unlink()
    drill_config(root, repo)
    result = run(root)
    assert result.returncode == 1, result.output
    found = records(root)
    latest = found["latest"]
    assert latest["verdict"] == "failed"
    proof = check(latest, "replay_proof")
    assert proof["outcome"] == "failed", proof
    assert "WAL replay stopped early and data is missing" in proof["detail"]
    continuity = check(latest, "wal_continuity")
    assert continuity["outcome"] == "failed"
    assert f"WAL segment {victim.name[:24]} is missing" in continuity["detail"]
    assert "point-in-time recovery is broken: no target after" in continuity["detail"]
    pitr = found["time"]
    assert pitr["verdict"] == "failed"
    assert "recovery ended before configured recovery target was reached" in pitr["reason"]
    assert found["immediate"]["verdict"] == "passed"  # the newest set itself is still whole
    assert_clean(root, result)


def test_corrupted_file_in_a_set_fails_in_seconds(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    full = sorted(repo.backup_dir().glob("*F"))[0]
    victim = max((p for p in (full / "pg_data" / "base").rglob("*.lz4")), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    drill_config(root, repo, targets='recovery_targets = ["latest"]')
    started = time.monotonic()
    result = run(root)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.output
    assert elapsed < 60, f"a corrupted set must be reported in seconds, took {elapsed:.0f} s"
    latest = records(root)["latest"]
    assert latest["verdict"] == "failed"
    assert "is corrupt" in latest["reason"], latest["reason"]
    verify = check(latest, "pgbackrest_verify")
    assert verify["outcome"] == "failed"
    assert "checksum invalid: 1" in verify["detail"] or "invalid" in verify["detail"]
    assert_clean(root, result)


def test_unknown_stanza_fails_naming_it(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    config = drill_config(root, repo, targets='recovery_targets = ["latest"]')
    config.write_text(config.read_text().replace(f'stanza = "{repo.stanza}"', 'stanza = "nosuchstanza"'))
    result = run(root)
    assert result.returncode == 1, result.output
    assert "stanza 'nosuchstanza'" in records(root)["latest"]["reason"]
    assert_clean(root, result)


def test_newest_archived_wal_older_than_the_rpo_fails(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    drill_config(root, repo, objectives='rpo = "1s"\nrto = "15m"', targets='recovery_targets = ["latest"]')
    result = run(root)
    assert result.returncode == 1, result.output
    rpo = check(records(root)["latest"], "rpo_newest_wal")
    assert rpo["outcome"] == "failed"
    assert "WAL archiving has stalled" in rpo["detail"]
    assert_clean(root, result)


def test_target_before_the_oldest_backup_fails(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    early = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    config = drill_config(root, repo, targets='recovery_targets = ["time"]')
    config.write_text(config.read_text().replace('pitr_target = "2s"', f'pitr_target = "{early}"'))
    result = run(root)
    assert result.returncode == 1, result.output
    assert "is before the oldest backup set" in records(root)["time"]["reason"]
    assert_clean(root, result)


def test_unreachable_repository_could_not_verify(scenario: tuple[Path, Repo], tmp_path: Path) -> None:
    root, repo = scenario
    from tests.conftest import free_port

    options = (
        'options = ["--repo1-type=s3", "--repo1-s3-bucket=backups", "--repo1-s3-endpoint=localhost", '
        f'"--repo1-storage-port={free_port()}", "--repo1-s3-region=us-east-1", "--repo1-s3-uri-style=path", '
        '"--repo1-storage-verify-tls=n", "--io-timeout=2", "--db-timeout=3"]'
    )
    drill_config(root, repo, extra=options, targets='recovery_targets = ["latest"]')
    result = run_cli(
        "run",
        "--config",
        str(root / "drills.toml"),
        workdir=root / "work",
        timeout=300,
        env={"PGBACKREST_REPO1_S3_KEY": "k", "PGBACKREST_REPO1_S3_KEY_SECRET": "s3-secret-never-shown"},
    )
    assert result.returncode == 3, result.output
    reason = records(root)["latest"]["reason"]
    assert "unreachable" in reason or "could not read the repository" in reason, reason
    assert "s3-secret-never-shown" not in result.output
    assert_clean(root, result)


def test_a_random_target_inside_the_window_is_reached_exactly_and_its_seed_recorded(
    scenario: tuple[Path, Repo],
) -> None:
    root, repo = scenario
    drill_config(root, repo, targets='recovery_targets = ["random"]\nrandom_seed = 20261202')
    result = run(root)
    assert result.returncode == 0, result.output
    record = records(root)["random"]
    assert record["verdict"] == "passed", record["reason"]
    chosen = record["replay"]["random_target"]
    assert chosen["seed"] == 20261202
    assert chosen["window_start"] <= chosen["target"] <= chosen["window_end"]
    assert record["recovery_target"] == chosen["target"]
    recovery = check(record, "recovery")["detail"]
    assert "recovery stopped at the target" in recovery
    assert "no commit after the target was replayed" in recovery
    assert check(record, "replay_proof")["outcome"] == "passed"
    assert_clean(root, result)
