"""Largest tables as evidence on a real PostgreSQL whose statistics are gone, as after a physical restore
(crash recovery resets pg_stat counters, so n_live_tup reads 0 for every table): counts are exact for tables
small enough to count, and marked as estimates otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from restoredrill import checks, pgtools
from restoredrill.checks import Restored
from restoredrill.targets.local import LocalInstance

pytestmark = pytest.mark.integration


def _restored(instance: LocalInstance, bindir: Path) -> Restored:
    assert instance.connection is not None
    return Restored(
        connection=instance.connection,
        dbname="postgres",
        bindir=bindir,
        listing=None,
        manifest=None,
        taken_at=datetime.now(UTC),
        rpo_s=3600,
        restore_returncode=0,
        restore_errors=[],
    )


def test_counts_survive_statistics_that_did_not(workdir: Path) -> None:
    bindir = pgtools.bindir_for(15)
    with LocalInstance(bindir, run_id="largest", base=workdir) as instance:
        assert instance.connection is not None
        with instance.connection.connect("postgres") as conn:
            conn.execute("CREATE TABLE orders AS SELECT g AS id, repeat('x', 50) AS n FROM generate_series(1, 5000) g")
            conn.execute("CREATE TABLE users AS SELECT g AS id FROM generate_series(1, 200) g")
            conn.commit()
            conn.execute("SELECT pg_stat_reset()")  # what a physical restore leaves: no live-tuple counts
            conn.commit()
        restored = _restored(instance, bindir)
        exact = {t["table"]: t for t in checks.largest_tables(restored)}
        assert exact["public.orders"]["rows"] == 5000
        assert exact["public.orders"]["rows_estimated"] is False
        assert exact["public.users"]["rows"] == 200
        assert next(iter(exact)) == "public.orders"  # by size on disk, which a restore keeps

        with instance.connection.connect("postgres") as conn:
            conn.execute("ANALYZE orders")
            conn.commit()
        estimated = {t["table"]: t for t in checks.largest_tables(restored, exact_up_to_bytes=0)}
        assert estimated["public.orders"]["rows_estimated"] is True
        assert estimated["public.orders"]["rows_source"] == "pg_class.reltuples"
        assert estimated["public.orders"]["rows"] == 5000
