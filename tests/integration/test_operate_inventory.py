"""`restoredrill list` and `restoredrill doctor` against real stores: a dump folder made by the backup job, a
real pgBackRest repository, a moto RDS API. Both only read."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.conftest import AWS_ENV, DrillScenario, MotoServer, run_cli, traversable_tempdir, tree_digest
from tests.pgbackrest_support import Repo

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pgbackrest-plain")]


@pytest.fixture
def repo(pgbackrest_template: Repo) -> Iterator[Repo]:
    root = traversable_tempdir("rd-list-")
    yield pgbackrest_template.clone(root)
    shutil.rmtree(root, ignore_errors=True)


def rds_source(moto: MotoServer) -> str:
    source_id = f"list-{uuid.uuid4().hex[:8]}"
    rds = boto3.client(
        "rds",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    rds.create_db_instance(
        DBInstanceIdentifier=source_id,
        DBInstanceClass="db.m5.large",
        Engine="postgres",
        MasterUsername="postgres",
        MasterUserPassword="MasterPass123",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    rds.create_db_snapshot(DBInstanceIdentifier=source_id, DBSnapshotIdentifier=f"{source_id}-snap")
    return source_id


def config(
    drill: DrillScenario,
    repo: Repo,
    moto: MotoServer,
    source_id: str,
    logical_rpo: str = "26h",
    top: str = "",
    source: str = "",
) -> Path:
    path = drill.root / "drills.toml"
    path.write_text(
        f'{top}\nreports_dir = "{drill.reports}"\n'
        f'[objectives.logical]\nrpo = "{logical_rpo}"\nrto = "1h"\n'
        '[objectives.pgbackrest]\nrpo = "1h"\nrto = "1h"\n'
        '[objectives.rds]\nrpo = "1h"\nrto = "1h"\n'
        f'[target]\nworkdir = "{drill.workdir}"\n'
        f'[databases.shop.logical]\nsource = "{source or f"file://{drill.prefix}/"}"\n'
        f'[databases.shop.pgbackrest]\nstanza = "{repo.stanza}"\nconfig = "{repo.config}"\n'
        f'[databases.billing.rds]\nsource_instance = "{source_id}"\nregion = "us-east-1"\n'
        f'endpoint_url = "{moto.endpoint}"\n'
    )
    return path


def test_list_shows_newest_backups_ages_and_windows_of_every_layer_without_restoring(
    drill: DrillScenario, repo: Repo, moto: MotoServer
) -> None:
    path = config(drill, repo, moto, rds_source(moto))
    before = tree_digest(drill.store), tree_digest(repo.folder / "repo")
    started = time.monotonic()
    result = run_cli("list", "--config", str(path), "--json", workdir=drill.workdir)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.output
    assert elapsed < 30, f"list must take seconds, took {elapsed:.1f}"
    rows = {(r["database"], r["layer"]): r for r in json.loads(result.output)}
    assert set(rows) == {("shop", "logical"), ("shop", "pgbackrest"), ("billing", "rds")}
    logical = rows["shop", "logical"]
    assert logical["backup_id"] == str(drill.newest().relative_to(drill.prefix)), logical
    assert logical["backups"] == 4
    assert logical["status"] == "fresh"
    assert logical["database_size_bytes"] > logical["size_bytes"] > 0, "the backup job records the database size"
    assert logical["window_from"] < logical["window_to"]
    pgbackrest = rows["shop", "pgbackrest"]
    assert pgbackrest["backups"] == 3, pgbackrest
    assert pgbackrest["status"] == "fresh", pgbackrest
    assert pgbackrest["window_from"] <= pgbackrest["window_to"]
    assert pgbackrest["age_s"] < 3600
    assert pgbackrest["database_size_bytes"] > 0
    rds = rows["billing", "rds"]
    assert rds["backup_id"].endswith("-snap"), rds
    assert rds["status"] == "fresh", rds
    assert rds["window_to"] is not None
    assert (tree_digest(drill.store), tree_digest(repo.folder / "repo")) == before, "list only reads"
    assert list(drill.workdir.iterdir()) == [], "list restores nothing and leaves nothing"

    table = run_cli("list", "--config", str(path), workdir=drill.workdir)
    assert table.returncode == 0, table.output
    assert "FRESH" in table.output
    assert "shop" in table.output
    assert "billing" in table.output


def test_list_exits_1_on_a_stale_backup_and_3_on_an_unreadable_layer(
    drill: DrillScenario, repo: Repo, moto: MotoServer
) -> None:
    path = config(drill, repo, moto, rds_source(moto), logical_rpo="1s")
    time.sleep(1.1)
    stale = run_cli("list", "--config", str(path), "--json", "--database", "shop", workdir=drill.workdir)
    assert stale.returncode == 1, stale.output
    assert {r["status"] for r in json.loads(stale.output) if r["layer"] == "logical"} == {"STALE".lower()}

    path = config(drill, repo, moto, "no-such-instance")
    unreadable = run_cli("list", "--config", str(path), "--json", "--database", "billing", workdir=drill.workdir)
    assert unreadable.returncode == 3, unreadable.output
    (row,) = json.loads(unreadable.output)
    assert row["status"] == "unreadable"
    assert "no-such-instance" in row["problem"]


def test_list_bad_input_is_one_sentence_and_exit_2(drill: DrillScenario, repo: Repo, moto: MotoServer) -> None:
    missing = run_cli("list", "--config", str(drill.root / "nope.toml"))
    assert missing.returncode == 2
    assert "does not exist" in missing.output
    assert "Traceback" not in missing.output
    path = config(drill, repo, moto, "x")
    unknown = run_cli("list", "--config", str(path), "--database", "nosuch")
    assert unknown.returncode == 2
    assert "'nosuch' is not in the configuration" in unknown.output


def test_doctor_is_green_on_a_ready_machine_and_names_each_problem(
    drill: DrillScenario, repo: Repo, moto: MotoServer
) -> None:
    source_id = rds_source(moto)
    ready = run_cli("doctor", "--config", str(config(drill, repo, moto, source_id)), workdir=drill.workdir)
    assert ready.returncode == 0, ready.output
    lines = ready.output.splitlines()
    for name in ("config", "postgresql 15", "pgbackrest", "docker", "shop/logical", "shop/pgbackrest", "billing/rds"):
        assert any(f" {name} " in line for line in lines), (name, ready.output)
    assert next(line for line in lines if " disk " in line).startswith("ok")

    broken = config(
        drill,
        repo,
        moto,
        "no-such-instance",
        top="disk_reserve_mb = 100000000",  # 100 TB: no workdir has that much room
        source=f"file://{drill.root}/missing/",
    )
    sick = run_cli("doctor", "--config", str(broken), workdir=drill.workdir)
    assert sick.returncode == 1, sick.output
    problems = [line for line in sick.output.splitlines() if line.startswith("PROBLEM")]
    assert any("shop/logical" in line and "does not exist" in line for line in problems), sick.output
    assert any("billing/rds" in line and "no-such-instance" in line for line in problems), sick.output
    assert any(" disk " in line and "needs about" in line for line in problems), sick.output
    assert "Traceback" not in sick.output

    unusable = run_cli("doctor", "--config", str(drill.root / "nope.toml"))
    assert unusable.returncode == 2, unusable.output
    assert unusable.output.startswith("PROBLEM config")
