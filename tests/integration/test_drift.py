"""Drift against the last passing drill, end to end through the CLI on real dumps WITHOUT a manifest (a dump made
by another tool): a good drill records the baseline; a dump with a table emptied, an index and a constraint dropped
FAILS naming each, with both values; the next healthy dump passes against the last PASSING drill, not the failed one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from restoredrill import drift, manifest, pgtools, proc
from restoredrill.evidence import new_run_id
from restoredrill.targets.local import LocalInstance
from tests.conftest import DrillScenario, leftovers

pytestmark = pytest.mark.integration
KEY_TIME = re.compile(r"-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})\.dump$")


def records(drill: DrillScenario) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((drill.reports / "evidence").glob("*.json"))]


def drift_of(record: dict) -> dict:
    return next(c for c in record["checks"] if c["name"] == "drift")


def emptied_dump(drill: DrillScenario, workdir: Path) -> tuple[Path, int]:
    """The newest dump restored into a real PostgreSQL, `invoices` emptied, an index and a constraint dropped, dumped
    again with pg_dump -Fc as the next day's key, with no manifest or metadata (another tool's dump). Returns the
    number of invoices it had."""
    newest = drill.newest()
    taken = datetime.strptime(KEY_TIME.search(newest.name).group(1), "%Y-%m-%dT%H-%M-%S").replace(tzinfo=UTC)  # type: ignore[union-attr]
    later = max(datetime.now(UTC).replace(microsecond=0), taken + timedelta(seconds=1))
    target = drill.prefix / f"{later:%Y-%m-%d}" / f"shop-{later:%Y-%m-%dT%H-%M-%S}.dump"
    target.parent.mkdir(exist_ok=True)
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    with LocalInstance(bindir, run_id=new_run_id(), base=workdir, label="drift-source") as source:
        assert source.connection is not None
        connection = source.connection
        source.create_database("shop")
        common = ["-h", connection.host, "-p", str(connection.port), "-U", connection.user]
        restore = [pgtools.client_tool("pg_restore", bindir), *common, "-d", "shop", str(newest)]
        assert proc.run(restore, timeout=120, env=connection.env(), what="pg_restore").returncode == 0
        with connection.connect("shop") as conn:
            invoices = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]  # type: ignore[index]
            conn.execute("TRUNCATE invoices")
            conn.execute("DROP INDEX orders_created_at_idx")
            conn.execute("ALTER TABLE orders DROP CONSTRAINT orders_amount_check")
        dump = [pgtools.client_tool("pg_dump", bindir), "-Fc", *common, "-f", str(target), "shop"]
        assert proc.run(dump, timeout=120, env=connection.env(), what="pg_dump").returncode == 0
    return target, int(invoices)


def test_a_table_emptied_in_a_dump_without_manifest_fails_against_the_last_good_drill(drill: DrillScenario) -> None:
    for sidecar in drill.prefix.rglob("*.json"):  # dumps made by another tool: no manifest, no metadata
        sidecar.unlink()
    drill.write_config()

    first = drill.run()
    assert first.returncode == 0, first.output
    (good,) = records(drill)
    assert good["verdict"] == "passed"
    (baseline,) = [c for c in good["checks"] if c["name"] == "drift"]
    assert baseline["outcome"] == "not_applicable", baseline  # nothing compared: never claimed as a pass
    assert "recorded as the baseline" in baseline["detail"], baseline
    assert good["shape"]["rows"]["public.invoices"] > 0
    assert "public.orders_created_at_idx" in good["shape"]["objects"]["indexes"]
    history = [json.loads(line) for line in (drill.reports / "history.jsonl").read_text().splitlines()]
    assert history[-1]["shape"] == good["shape"]

    broken, invoices = emptied_dump(drill, drill.workdir)
    second = drill.run()
    assert second.returncode == 1, second.output
    failed = records(drill)[-1]
    assert failed["verdict"] == "failed"
    detail = drift_of(failed)["detail"]
    assert failed["reason"].startswith(f"drift: lost since the last passing drill ({good['run_id']}"), failed["reason"]
    assert f"table public.invoices: {invoices} rows at the last passing drill, 0 now (-100%)" in detail
    assert "index public.orders_created_at_idx: present at the last passing drill, missing now" in detail
    assert "constraint orders_amount_check on public.orders: present at the last passing drill, missing now" in detail
    assert "Traceback" not in second.output
    assert "public.invoices" in second.output  # the console line names the table

    broken.unlink()
    third = drill.run()
    assert third.returncode == 0, third.output
    healthy = records(drill)[-1]
    assert healthy["verdict"] == "passed"
    check = drift_of(healthy)
    assert check["outcome"] == "passed"
    assert f"against the last passing drill ({good['run_id']}" in check["detail"]  # not the failed one
    assert leftovers(drill.workdir) == []


def test_the_shared_table_counts_give_the_shape_counting_each_table_gives(workdir: Path) -> None:
    """drift reuses the restore's per-table counts (checks.exact_row_counts, also manifest_row_counts'): a
    partitioned table, sub-partitioned too, is the sum of its leaves, exactly as count(*) of the table itself."""
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    with LocalInstance(bindir, run_id=new_run_id(), base=workdir, label="drift-counts") as server:
        assert server.connection is not None
        server.create_database("parts")
        with server.connection.connect("parts") as conn:
            conn.execute(
                "CREATE TABLE m (d date, v int) PARTITION BY RANGE (d);"
                "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"
                " PARTITION BY HASH (v);"
                "CREATE TABLE m_2024_0 PARTITION OF m_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 0);"
                "CREATE TABLE m_2024_1 PARTITION OF m_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 1);"
                "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
                "CREATE TABLE empty_parent (d date) PARTITION BY RANGE (d);"
                'CREATE TABLE "Odd Name" (x int);'
                "INSERT INTO m SELECT date '2024-01-01' + (i % 700), i FROM generate_series(1, 1000) i;"
                'INSERT INTO "Odd Name" SELECT generate_series(1, 7);'
            )
            shared = drift.measure(conn, manifest.row_counts(conn))
            each = drift.measure(conn, {})  # nothing shared: every table counted on its own
    assert shared == each
    assert shared.rows["public.m"] == 1000
    assert shared.rows["public.empty_parent"] == 0
    assert shared.rows["public.Odd Name"] == 7
