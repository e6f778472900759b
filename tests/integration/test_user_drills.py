"""A team's own checks, written as pytest tests with the `restored` fixture, run through `restoredrill run`
against real dumps restored into real PostgreSQL: their outcomes join the drill's evidence, its verdict and
its report like any built-in check, and they share the drill's one restore, also under `-n 2`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import DrillScenario

pytestmark = pytest.mark.integration

PASSING_AND_FAILING = """
from fixtures.restored import RestoredDatabase


def test_users_exist(restored: RestoredDatabase) -> None:
    assert restored.scalar("SELECT count(*) FROM users") > 0


def test_no_order_over_100(restored: RestoredDatabase) -> None:
    expensive = restored.scalar("SELECT count(*) FROM orders WHERE amount > %s", 100)
    assert expensive == 0, f"{expensive} order(s) cost more than 100"
"""

RAISING = """
def test_reads_a_table_the_backup_never_had(restored) -> None:
    restored.scalar("SELECT count(*) FROM no_such_table")
"""

# Each test notes which server answered it (the restore's port), on which xdist worker, and what the handle says.
SHARED = """
import json
import os
from pathlib import Path

import pytest


def _note(restored, test: str) -> None:
    with restored.connect() as conn:
        port = conn.info.port
        read_only = conn.execute("SHOW default_transaction_read_only").fetchone()[0]
    line = {
        "test": test,
        "database": restored.database,
        "layer": restored.layer,
        "port": port,
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "backup": restored.backup.id,
        "read_only": read_only,
        "dsn_has_port": f"port={port}" in restored.dsn,
    }
    with Path(os.environ["NOTES"]).open("a") as notes:
        notes.write(json.dumps(line) + "\\n")


def test_first(restored) -> None:
    _note(restored, "first")


def test_second(restored) -> None:
    _note(restored, "second")


@pytest.mark.drill(database="c")
def test_only_on_c(restored) -> None:
    _note(restored, "only_on_c")
"""


def _user_file(drill: DrillScenario, name: str, text: str) -> Path:
    path = drill.root / "my_drills" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _drill_with(drill: DrillScenario, name: str, text: str, exit_code: int, *args: str) -> tuple[dict, str]:
    """The logical drill of shop run with one file of a team's tests; its record and the console."""
    drill.write_config()
    result = drill.run(str(_user_file(drill, name, text)), *args)
    assert result.returncode == exit_code, result.output
    return drill.record(), result.output


def _check(record: dict, name: str) -> dict:
    found = [c for c in record["checks"] if c["name"] == name]
    assert found, f"{name} is not in the evidence: {[c['name'] for c in record['checks']]}"
    return found[0]


def test_a_failing_user_test_fails_the_drill_and_a_passing_one_is_a_passed_check(drill: DrillScenario) -> None:
    record, output = _drill_with(drill, "test_shop_rules.py", PASSING_AND_FAILING, 1)
    assert record["verdict"] == "failed"
    failed = _check(record, "test_shop_rules.py::test_no_order_over_100")
    assert failed["outcome"] == "failed"
    assert "order(s) cost more than 100" in failed["detail"]
    assert failed["sql"] == "SELECT count(*) FROM orders WHERE amount > %s"
    assert record["reason"].startswith("test_shop_rules.py::test_no_order_over_100: ")
    passed = _check(record, "test_shop_rules.py::test_users_exist")
    assert passed["outcome"] == "passed"
    assert passed["sql"] == "SELECT count(*) FROM users"
    assert _check(record, "amcheck")["outcome"] == "passed"  # the built-in checks ran on the same drill
    assert record["left_out"] == []
    html = next(drill.reports.glob("drill-report-*.html")).read_text()
    assert "test_shop_rules.py::test_no_order_over_100" in html
    assert "order(s) cost more than 100" in html
    assert "FAILED  shop / logical: test_shop_rules.py::test_no_order_over_100 failed" in output


def test_a_user_test_that_raises_makes_the_drill_could_not_verify(drill: DrillScenario) -> None:
    record, output = _drill_with(drill, "test_broken_rule.py", RAISING, 3)
    assert record["verdict"] == "could_not_verify"
    check = _check(record, "test_broken_rule.py::test_reads_a_table_the_backup_never_had")
    assert check["outcome"] == "error"
    assert "UndefinedTable" in check["detail"]
    assert 'relation "no_such_table" does not exist' in check["detail"]
    assert check["sql"] == "SELECT count(*) FROM no_such_table"
    assert "Traceback" not in output


def test_leaving_a_user_test_out_is_partial(drill: DrillScenario) -> None:
    record, _output = _drill_with(drill, "test_shop_rules.py", PASSING_AND_FAILING, 4, "-k", "not over_100")
    assert record["verdict"] == "partial"
    assert record["left_out"] == ["test_shop_rules.py::test_no_order_over_100"]


def test_under_two_workers_each_database_is_restored_once_for_all_its_tests(drill: DrillScenario) -> None:
    databases = "abcd"
    drill.write_config()
    config = drill.root / "drills.toml"
    text = config.read_text().replace("[databases.shop.logical]", "[databases.a.logical]")
    source = f'source = "file://{drill.prefix}/"\n'
    text = text.replace(source, source + 'dump_name = "shop"\n')
    for name in databases[1:]:
        text += f'\n[databases.{name}.logical]\n{source}dump_name = "shop"\n'
    config.write_text(text)
    notes = drill.root / "notes.jsonl"
    mine = _user_file(drill, "test_shared_restore.py", SHARED)
    result = drill.run(str(mine), "-n", "2", env={"NOTES": str(notes)}, timeout=400)
    assert result.returncode == 0, result.output

    # Restores counted: every finished drill appends one history line, whichever worker ran it.
    history = [json.loads(line) for line in (drill.reports / "history.jsonl").read_text().splitlines()]
    assert Counter(h["database"] for h in history) == dict.fromkeys(databases, 1)
    records = [json.loads(p.read_text()) for p in sorted((drill.reports / "evidence").glob("*.json"))]
    assert sorted(r["database"] for r in records) == list(databases)
    for record in records:
        assert record["verdict"] == "passed", record["reason"]
        assert record["left_out"] == []
        names = {c["name"] for c in record["checks"]}
        assert {
            "restore",
            "amcheck",
            "test_shared_restore.py::test_first",
            "test_shared_restore.py::test_second",
        } <= names
        assert ("test_shared_restore.py::test_only_on_c" in names) == (record["database"] == "c")

    seen = [json.loads(line) for line in notes.read_text().splitlines()]
    assert len(seen) == 2 * len(databases) + 1
    for name in databases:
        mine_ = [s for s in seen if s["database"] == name]
        assert len({s["port"] for s in mine_}) == 1, f"{name} answered from two servers: {mine_}"
        assert len({s["worker"] for s in mine_}) == 1, f"{name}'s tests ran on two workers: {mine_}"
        assert all(s["layer"] == "logical" and s["backup"] for s in mine_)
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}  # both workers drilled
    assert all(s["read_only"] == "on" and s["dsn_has_port"] for s in seen)
