"""Pure pieces of the operating commands: evidence that stays JSON after redaction, the copy's environment
for a rehearsed migration, matrix selectors, and the notification text."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from restoredrill.checks import Restored
from restoredrill.config import parse_config
from restoredrill.errors import ConfigError
from restoredrill.evidence import DrillRecord, Objectives
from restoredrill.operate import matrix, notify, progress
from restoredrill.operate.premigration import copy_environment
from restoredrill.targets.connection import Connection


def test_a_redacted_record_is_still_valid_json() -> None:
    """A rehearsed command like `psql "... password=xyz"` used to end a JSON string inside the redaction."""
    record = DrillRecord(
        run_id="r", database="shop", layer="logical", objectives=Objectives(rto_s=1, rpo_s=1), notes=["password=abc123"]
    )
    text = record.to_json()
    assert json.loads(text)["notes"] == ["password=***"]
    assert "abc123" not in text


def test_the_copy_environment_drops_every_inherited_libpq_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PGHOSTADDR": "10.0.0.9",
        "PGSERVICE": "production",
        "PGPASSFILE": "/root/.pgpass",
        "DATABASE_URL": "postgresql://app:prod@db.prod:5432/shop",
        "PGBACKREST_STANZA": "main",
        "HOME": "/root",
    }.items():
        monkeypatch.setenv(name, value)
    restored = Restored(
        connection=Connection("127.0.0.1", 54321, "postgres", "s3cr/t p@ss"),
        dbname="shop",
        bindir=Path("/usr/bin"),
        listing=None,
        manifest=None,
        taken_at=None,  # type: ignore[arg-type]
        rpo_s=1.0,
        restore_returncode=0,
        restore_errors=[],
    )
    env = copy_environment(restored)
    libpq = {k: v for k, v in env.items() if k.startswith("PG") and not k.startswith("PGBACKREST_")}
    assert libpq == {
        "PGHOST": "127.0.0.1",
        "PGPORT": "54321",
        "PGUSER": "postgres",
        "PGPASSWORD": "s3cr/t p@ss",
        "PGDATABASE": "shop",
        "PGSSLMODE": "disable",
    }
    assert env["DATABASE_URL"] == "postgresql://postgres:s3cr%2Ft%20p%40ss@127.0.0.1:54321/shop?sslmode=disable"
    assert env["HOME"] == "/root"
    assert env["PGBACKREST_STANZA"] == "main"


def _config(*names: str) -> object:
    return parse_config(
        {
            "objectives": {"logical": {"rpo": "1h", "rto": "1h"}},
            "databases": {name: {"logical": {"source": "file:///backups/"}} for name in names},
        }
    )


def test_matrix_selectors_exclude_databases_whose_names_extend_another() -> None:
    # Item ids start with the drill's id (`test_amcheck[shop-logical]`): only a name that extends
    # "<database>-<layer>" itself can clash.
    config = _config("shop", "shop-eu", "shop-logical", "shop-logical-eu", "billing")
    cells = {c["database"]: c["select"] for c in matrix.matrix(config)["include"]}  # type: ignore[arg-type]
    assert cells["shop"] == "[shop-logical and not [shop-logical-logical and not [shop-logical-eu-logical"
    assert cells["shop-eu"] == "[shop-eu-logical"
    assert cells["shop-logical"] == "[shop-logical-logical"
    assert cells["billing"] == "[billing-logical"
    with pytest.raises(ConfigError, match="cannot be selected with pytest -k"):
        matrix.matrix(_config("shop (eu)"))  # type: ignore[arg-type]


def test_the_notification_names_verdict_reasons_and_report() -> None:
    failed = DrillRecord(
        run_id="r1",
        database="shop",
        layer="pgbackrest",
        variant="latest",
        verdict="failed",
        reason="recovery: WAL segment missing",
        objectives=Objectives(rto_s=1, rpo_s=1),
    )
    passed = failed.model_copy(update={"database": "billing", "verdict": "passed", "reason": None})
    text = notify.message(1, [failed, passed], "r1", Path("/r/drill-report.html"))
    assert text.splitlines() == [
        "Restore drills r1: FAILED (1 of 2 drill(s) passed)",
        "- shop/pgbackrest (latest): failed: recovery: WAL segment missing",
        "Report: /r/drill-report.html",
    ]


def _run_stage(reporter: progress.Reporter, seconds: float) -> None:
    values = iter([10 * progress.MB, 40 * progress.MB, "not a number", 80 * progress.MB] + [100 * progress.MB] * 99)

    def probe() -> float | str | None:
        value = next(values)
        if value == "not a number":
            raise OSError("a probe that fails must not break the drill")
        return value

    with reporter.stage("shop/logical fetch", total=100 * progress.MB, unit="bytes", probe=probe):
        time.sleep(seconds)


def test_plain_progress_says_start_rate_eta_and_end() -> None:
    lines: list[str] = []
    _run_stage(progress.Reporter(lines.append, interval_s=0.1), 0.45)
    assert lines[0] == "shop/logical fetch: started (100.0 MB)"
    assert any(" MB of 100.0 MB, " in line and "MB/s, ETA " in line for line in lines[1:-1]), lines
    assert lines[-1].startswith("shop/logical fetch: finished, 100.0 MB of 100.0 MB")
    assert len(lines) >= 4, "a line every interval in between: a long stage is never silent"


def test_live_progress_draws_bars_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    lines: list[str] = []
    _run_stage(progress.Reporter(lines.append, live=True, console=console), 1.3)
    assert lines == [], "on a terminal the bars replace the plain lines"
    assert "shop/logical fetch" in screen.getvalue()
    assert "MB/s" in screen.getvalue()


def test_lsn_round_trip() -> None:
    assert progress.lsn_text(progress.lsn_value("1/9A000028")) == "1/9A000028"


def test_status_polls_are_shown_as_they_change() -> None:
    lines: list[str] = []
    states = iter(["creating", "creating", "backing-up"] + ["available"] * 99)
    reporter = progress.Reporter(lines.append, interval_s=0.1)
    with reporter.stage("billing/rds restore into restoredrill-billing-1", unit="status", probe=lambda: next(states)):
        time.sleep(0.35)
    assert any("status creating" in line for line in lines), lines
    assert lines[-1].startswith("billing/rds restore into restoredrill-billing-1: finished, status ")
