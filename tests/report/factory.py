"""Evidence records shaped like the real drills' records (see reports/evidence/ after `restoredrill demo`),
for rendering reports of any size and outcome without running PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from restoredrill.evidence import BackupInfo, CheckRecord, DrillRecord, Objectives, Stages, TargetInfo, iso

SHA = "ecc396b51318f7b66a6c35f52259ed544767fd6a26b5595bd47b49eb636886d6"
CHECKS = [
    ("restore", None),
    ("rpo_newest_age", None),
    ("rpo_largest_gap", None),
    ("rto", None),
    ("restore_errors", None),
    ("toc_tables", "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL"),
    ("manifest_row_counts", "SELECT count(*) FROM ONLY <each table>"),
    ("manifest_structure", None),
    ("matviews_populated", "SELECT schemaname, matviewname, ispopulated FROM pg_matviews"),
    ("amcheck", "pg_amcheck --install-missing (heap and btree, every relation)"),
    ("sequences", "SELECT s.oid::regclass::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"),
    ("min_rows:public.users", 'SELECT count(*) FROM "public"."users"'),
    ("freshness:public.orders.created_at", 'SELECT max("created_at") FROM "public"."orders"'),
    ("sql:every order belongs to a user", "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id"),
]


def run_id_at(moment: datetime, suffix: str = "abc123") -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}-{suffix}"


def healthy(
    database: str,
    run_id: str,
    at: datetime,
    *,
    layer: str = "logical",
    rto: float = 95.0,
    rpo: float = 3600.0,
    variant: str | None = None,
) -> DrillRecord:
    taken = at - timedelta(seconds=rpo)
    key = f"{taken:%Y-%m-%d}/{database}-{taken:%Y-%m-%dT%H-%M-%S}.dump"
    record = DrillRecord(
        run_id=run_id,
        database=database,
        layer=layer,  # type: ignore[arg-type]
        variant=variant,
        target="local",
        verdict="passed",
        reason=None,
        backup=BackupInfo(
            id=key,
            taken_at=iso(taken),
            location=f"s3://backups/postgres/logical/{key}",
            size_bytes=734_003_200,
            sha256=SHA,
            sha256_expected=SHA,
            server_version="15.18 (Debian 15.18-0+deb12u1)",
            pg_dump_version="15.18 (Debian 15.18-0+deb12u1)",
        ),
        stages=Stages(fetch_s=rto * 0.2, restore_s=rto * 0.7, checks_s=4.2, cleanup_s=0.4),
        rto_s=rto,
        rpo_s=rpo,
        rpo_detail={"newest_age_s": rpo, "largest_gap_s": 86400.0, "dumps_in_window": 30, "retention_days": 30},
        objectives=Objectives(rto_s=3600, rpo_s=93600),
        checks=[
            CheckRecord(name=n, outcome="passed", detail=f"{n} as expected", sql=s, duration_s=0.02) for n, s in CHECKS
        ],
        largest_tables=[
            {"table": "public.orders", "rows": 20000, "rows_estimated": True, "rows_source": "pg_class.reltuples"},
            {"table": "public.users", "rows": 2000, "rows_estimated": False, "rows_source": "count(*)"},
        ],
        target_info=TargetInfo(
            kind="local", server_version="15.18", bindir="/usr/lib/postgresql/15/bin", startup_s=1.4
        ),
        started_at=iso(at - timedelta(seconds=rto + 5)) or "",
        finished_at=iso(at),
        tool_versions={"restoredrill": "0.1.0", "python": "3.11.7", "pg_restore": "pg_restore (PostgreSQL) 15.18"},
        host="drill-runner-1",
        run_by="github-actions:acme/backups#4242 (oncall)",
    )
    return record


def corrupt(database: str, run_id: str, at: datetime) -> DrillRecord:
    record = healthy(database, run_id, at)
    detail = (
        "checksum mismatch: the dump's sha256 is 1f2e3d4c5b6a7988..., the backup job recorded "
        "ecc396b51318f7b6...; it was corrupted or altered after upload"
    )
    record.verdict, record.reason = "failed", detail
    record.backup.sha256 = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988"
    record.rto_s = None
    record.stages = Stages(fetch_s=12.5, cleanup_s=0.2)
    record.checks = [CheckRecord(name="restore", outcome="failed", detail=detail)] + [
        CheckRecord(name=n, outcome="error", detail=f"not run: {detail}", sql=s) for n, s in CHECKS[4:]
    ]
    return record


def could_not_verify(database: str, run_id: str, at: datetime) -> DrillRecord:
    record = healthy(database, run_id, at)
    reason = (
        "S3 denied access (AccessDenied) while listing s3://backups/postgres/logical/: the role needs s3:ListBucket"
    )
    record.verdict, record.reason = "could_not_verify", reason
    record.backup = BackupInfo()
    record.rto_s = record.rpo_s = None
    record.rpo_detail = {}
    record.stages = Stages(cleanup_s=0.1)
    record.largest_tables = []
    record.checks = [CheckRecord(name="restore", outcome="error", detail=f"could not verify: {reason}")] + [
        CheckRecord(name=n, outcome="error", detail=f"not run: {reason}") for n, _s in CHECKS[1:]
    ]
    return record


def stale(database: str, run_id: str, at: datetime) -> DrillRecord:
    record = healthy(database, run_id, at, rpo=3 * 86400.0)
    detail = "newest dump is 3d old (RPO 1d2h): the backups are stale"
    record.verdict, record.reason = "failed", f"rpo_newest_age: {detail}"
    record.checks[1] = CheckRecord(name="rpo_newest_age", outcome="failed", detail=detail)
    return record


def write(reports: Path, records: list[DrillRecord]) -> list[Path]:
    """As the drills write them: one evidence file each, and a line in history.jsonl."""
    return [record.write(reports) for record in records]


def monthly_history(reports: Path, databases: list[str], months: int, now: datetime) -> None:
    """Earlier monthly runs, RTO slowly growing, for trends."""
    for back in range(months, 0, -1):
        at = now - timedelta(days=30 * back)
        run = run_id_at(at, f"m{back:05d}")
        write(
            reports,
            [
                healthy(db, run, at, rto=60.0 + 4 * (months - back) + i, rpo=3000.0 + 100 * back)
                for i, db in enumerate(databases)
            ],
        )


NOW = datetime(2026, 11, 1, 5, 17, tzinfo=UTC)
