"""The schema zoo: every drill of a database using what production schemas use PASSES (a false alarm is as
serious as a miss), in every dump variant; and the zoo's backups catch what the demo cannot show."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from restoredrill.zoo import DATABASE, Zoo, build_zoo
from tests.conftest import leftovers, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def zoo_template() -> Iterator[Zoo]:
    """The zoo (1 M rows in public.big) and its backups in every variant, built once per worker."""
    folder = traversable_tempdir("rd-zoo-")
    yield build_zoo(folder / "store", log=lambda _m: None)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def zoo_run(zoo_template: Zoo, workdir: Path) -> Iterator[tuple[Zoo, Path, Path]]:
    """A config folder of its own for one run (the backups are only read)."""
    root = traversable_tempdir("rd-zoo-run-")
    yield zoo_template, root, workdir
    shutil.rmtree(root, ignore_errors=True)


def records(reports: Path) -> dict[str, dict]:
    found = {}
    for path in (reports / "evidence").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["database"]] = record
    return found


def test_every_zoo_drill_passes(zoo_run: tuple[Zoo, Path, Path]) -> None:
    zoo, root, workdir = zoo_run
    config = root / "drills.toml"
    config.write_text(zoo.config(root / "reports", workdir))
    result = run_cli("run", "--config", str(config), "-n", "2", workdir=workdir, timeout=900)
    assert result.returncode == 0, result.output
    found = records(root / "reports")
    assert set(found) == set(zoo.databases)
    for name, record in found.items():
        assert record["verdict"] == "passed", (name, record["reason"])
        outcomes = {c["name"]: c["outcome"] for c in record["checks"]}
        # Nothing failed or could not run; a check that does not apply to a schema says so, never "passed".
        assert set(outcomes.values()) <= {"passed", "not_applicable"}, (name, outcomes)
        assert all(c["detail"] for c in record["checks"] if c["outcome"] == "not_applicable"), name
        assert {"restore", "restore_errors", "toc_tables", "amcheck"} <= set(outcomes), name
        assert record["backup"]["database"] == DATABASE
    full = {c["name"]: c["detail"] for c in found[DATABASE]["checks"]}
    assert full["toc_tables"] == "all 28 tables of the dump's table of contents exist"
    assert "11 sequence-fed column(s)" in full["sequences"]
    assert "1 cycling sequence(s) not compared" in full["sequences"]
    assert "1 materialized view(s) populated at backup time" in full["matviews_populated"]
    assert full["manifest_row_counts"].startswith("25 tables, 10054")
    assert full["manifest_content"].startswith("25 table(s) hold exactly the rows of backup time")
    assert leftovers(workdir) == []


def test_another_databases_dump_under_the_key_fails_naming_both(zoo_run: tuple[Zoo, Path, Path]) -> None:
    """zoo_no_owner_acl's key holds a dump of `zoo` (header dbname): without source_database that is a defect."""
    zoo, root, workdir = zoo_run
    config = root / "drills.toml"
    config.write_text(zoo.config(root / "reports", workdir, ["zoo_no_owner_acl"], identity=False))
    result = run_cli("run", "--config", str(config), workdir=workdir, timeout=600)
    assert result.returncode == 1, result.output
    record = records(root / "reports")["zoo_no_owner_acl"]
    assert record["verdict"] == "failed"
    assert record["reason"].startswith("the dump holds database 'zoo', not 'zoo_no_owner_acl'")
    assert record["backup"]["database"] == "zoo"
    assert record["backup"]["database_expected"] == "zoo_no_owner_acl"
