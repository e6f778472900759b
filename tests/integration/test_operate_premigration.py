"""`restoredrill premigration`: a migration rehearsed on a restored copy of the newest backup, through the CLI,
on real dumps made by the backup job and a real pgBackRest repository. The command only ever sees the copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from restoredrill import pgtools
from restoredrill.demo import load_shop
from restoredrill.targets.local import LocalInstance
from tests.conftest import Completed, DrillScenario, leftovers, run_cli, traversable_tempdir
from tests.pgbackrest_support import Repo, drill_config

pytestmark = pytest.mark.integration
# What the rehearsed command saw: its libpq environment, and a query answered by the database it reached.
PROBE = (
    "env | grep -E '^(PG[A-Z]*|DATABASE_URL)=' | grep -v -E '^PG(PASSWORD|BACKREST)' > {out}/env.txt; "
    "psql -Atc 'SELECT count(*) FROM users' > {out}/users.txt; "
    "psql \"$DATABASE_URL\" -Atc 'SELECT current_database()' > {out}/url.txt"
)
INHERITED = {"PGHOSTADDR": "203.0.113.9", "PGSERVICE": "production", "DATABASE_URL": "postgresql://app@db.prod/shop"}


def premigration(drill: DrillScenario, *args: str, env: dict[str, str] | None = None) -> Completed:
    config = drill.root / "drills.toml"
    return run_cli("premigration", "--config", str(config), "--database", "shop", *args, env=env, workdir=drill.workdir)


def evidence(reports: Path) -> dict:
    found = sorted(reports.rglob("*"))
    paths = [p for p in found if p.name.endswith("-premigration.json")]
    assert len(paths) == 1, found
    return json.loads(paths[0].read_text())


def check(record: dict, name: str) -> dict:
    return next(c for c in record["checks"] if c["name"] == name)


def test_a_migration_is_rehearsed_on_the_copy_timed_checked_and_reported(drill: DrillScenario) -> None:
    drill.write_config(extra="require_manifest = true")
    out = traversable_tempdir("rd-probe-")
    command = PROBE.format(out=out) + "; psql -v ON_ERROR_STOP=1 -c 'ALTER TABLE orders ADD COLUMN note text'"
    result = premigration(drill, "--max-backup-age", "26h", "--rehearse", command, env=INHERITED)
    assert result.returncode == 0, result.output
    record = evidence(drill.reports)
    assert record["verdict"] == "passed"
    assert record["variant"] == "premigration"
    migration = check(record, "migration")
    assert migration["outcome"] == "passed"
    assert migration["duration_s"] >= 0
    assert "the migration exited 0 after" in migration["detail"]
    newest = str(drill.newest().relative_to(drill.prefix))
    assert f"rollback point: dump {newest} taken " in record["notes"][0]
    assert record["rpo_detail"]["migration_exit_status"] == 0
    # The backup's own checks ran before the migration (a new column is no structure mismatch), the
    # database's checks after it.
    assert check(record, "manifest_structure")["outcome"] == "passed"
    assert check(record, "amcheck")["outcome"] == "passed"
    order = [c["name"] for c in record["checks"]]
    assert order.index("manifest_structure") < order.index("migration") < order.index("amcheck")

    seen = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines())
    assert seen["PGHOST"] == "127.0.0.1"
    assert "PGHOSTADDR" not in seen
    assert "PGSERVICE" not in seen
    assert seen["DATABASE_URL"].startswith("postgresql://postgres:")
    assert f"@127.0.0.1:{seen['PGPORT']}/shop" in seen["DATABASE_URL"]
    assert int((out / "users.txt").read_text()) == 2000, "the command reached the restored shop database"
    assert (out / "url.txt").read_text().strip() == "shop"
    assert "rollback point: dump" in result.output
    assert "migration: exit status 0" in result.output
    report = next(drill.reports.glob("drill-report-*.html")).read_text()
    assert "migration: exit status 0" in report
    assert leftovers(drill.workdir) == []
    shutil.rmtree(out, ignore_errors=True)


def test_a_failing_migration_fails_the_rehearsal_with_its_stderr_tail(drill: DrillScenario) -> None:
    drill.write_config()
    command = (
        "psql -v ON_ERROR_STOP=1 -c 'ALTER TABLE no_such_table ADD COLUMN x int' "
        "|| { echo 'hint: retry with password=hunter22' >&2; exit 4; }"
    )
    result = premigration(drill, "--rehearse", command)
    assert result.returncode == 1, result.output
    record = evidence(drill.reports)
    assert record["verdict"] == "failed"
    migration = check(record, "migration")
    assert migration["outcome"] == "failed"
    assert "the migration exited 4 after" in migration["detail"]
    assert 'relation "no_such_table" does not exist' in migration["detail"]
    assert "password=***" in migration["detail"]
    assert record["reason"].startswith("migration: the migration exited")
    assert "hunter22" not in json.dumps(record)
    assert "hunter22" not in result.output
    assert leftovers(drill.workdir) == []


def test_a_stale_backup_is_refused_before_anything_is_restored(drill: DrillScenario) -> None:
    drill.write_config()
    result = premigration(drill, "--max-backup-age", "1s", "--rehearse", "true")
    assert result.returncode == 2, result.output
    assert "take a backup first" in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert not (drill.reports / "evidence").exists()


def test_take_backup_dumps_the_source_first_and_rehearses_on_that_dump(drill: DrillScenario) -> None:
    drill.write_config()
    before = {p.name for p in drill.dumps()}
    base = traversable_tempdir("rd-source-")
    with LocalInstance(pgtools.bindir_for(15), run_id="premigration-source", base=base, label="source") as source:
        dsn = load_shop(source)
        result = premigration(
            drill,
            "--take-backup",
            "--max-backup-age",
            "10m",
            "--rehearse",
            "true",
            env={"RESTOREDRILL_SOURCE_DSN": dsn},
        )
    shutil.rmtree(base, ignore_errors=True)
    assert result.returncode == 0, result.output
    taken = [p for p in drill.dumps() if p.name not in before]
    assert len(taken) == 1
    assert evidence(drill.reports)["backup"]["id"] == str(taken[0].relative_to(drill.prefix))
    assert dsn.rsplit("password=", 1)[1] not in result.output, "the source's password is never printed"


def test_bad_input_is_one_sentence_and_exit_2(drill: DrillScenario) -> None:
    drill.write_config()
    for args, sentence in [
        (["--max-backup-age", "soon"], "--max-backup-age: 'soon' is not a duration"),
        (["--take-backup"], "--take-backup needs --source-dsn"),
        (["--layer", "pgbackrest"], "database 'shop' has no pgbackrest layer"),
    ]:
        result = premigration(drill, *args)
        assert result.returncode == 2, (args, result.output)
        assert sentence in result.output
        assert "Traceback" not in result.output
    unknown = run_cli("premigration", "--config", str(drill.root / "drills.toml"), "--database", "nope")
    assert unknown.returncode == 2
    assert "database 'nope' is not in the configuration" in unknown.output


@pytest.fixture
def pgbackrest(pgbackrest_template: Repo) -> Iterator[tuple[Path, Repo]]:
    root = traversable_tempdir("rd-premig-pgbr-")
    yield root, pgbackrest_template.clone(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.xdist_group("pgbackrest-plain")
def test_a_migration_rehearsed_on_a_pgbackrest_copy_reports_the_pitr_window(pgbackrest: tuple[Path, Repo]) -> None:
    root, repo = pgbackrest
    path = drill_config(root, repo)
    result = run_cli(
        "premigration",
        "--config",
        str(path),
        "--database",
        "postgres",
        "--layer",
        "pgbackrest",
        "--rehearse",
        "psql -v ON_ERROR_STOP=1 -c 'CREATE TABLE rehearsal (id int)'",
        workdir=root / "work",
        timeout=300,
    )
    assert result.returncode == 0, result.output
    record = evidence(root / "reports")
    assert record["verdict"] == "passed", record["reason"]
    assert check(record, "migration")["outcome"] == "passed"
    assert "point-in-time recovery window" in record["notes"][0]
    assert "rollback point: pgBackRest set" in result.output
    assert leftovers(root / "work") == []
