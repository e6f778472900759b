"""The operating commands' parsers and dispatch: `list`, `doctor`, `matrix`, `premigration`, `report --merge`.

cli.py adds these parsers and hands the parsed arguments here; each command lives in its own module.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("list", "doctor", "matrix", "premigration", "coverage")
PREMIGRATION_EPILOG = (
    "example: restoredrill premigration --database shop --max-backup-age 1h "
    "--rehearse 'alembic upgrade head'   (the command sees PG* and DATABASE_URL of the restored copy only)"
)
CONFIG_HELP = "drills.toml (default $RESTOREDRILL_CONFIG or ./drills.toml)"


def _table_command(sub: Any, name: str, summary: str, description: str) -> Any:
    """A read-only command printing a table (or JSON) from a configuration."""
    parser = sub.add_parser(name, help=summary, description=description)
    parser.add_argument("--config", default=None, help=CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def add_parsers(sub: Any) -> None:
    listing = _table_command(
        sub,
        "list",
        "the newest backups per database and layer, their age against the RPO and the restore window",
        "Read-only: lists each layer's backups with the drills' own discovery; restores nothing. "
        "Exit 0 every layer is within its RPO, 1 a backup is stale or missing, 3 a layer could not be read.",
    )
    listing.add_argument("--database", action="append", default=None, help="only this database (repeatable)")

    doctor = sub.add_parser(
        "doctor",
        help="check binaries, pgBackRest, Docker, credentials, the RDS API, free disk and the configuration",
        description="One line per check. Exit 0 ready, 1 a problem was found, 2 the configuration is unusable.",
    )
    doctor.add_argument("--config", default=None, help=CONFIG_HELP)

    matrix = sub.add_parser(
        "matrix",
        help="the database x layer cells of a configuration as JSON for a CI strategy.matrix (fromJSON)",
        description='Prints {"include": [{"name", "database", "layer", "select"}, ...]} on one line; each job '
        'runs `restoredrill run -k "$SELECT"` and `restoredrill report --merge` joins their evidence.',
    )
    matrix.add_argument("--config", default=None, help=CONFIG_HELP)

    pre = sub.add_parser(
        "premigration",
        help="rehearse a migration on a restored copy of the newest backup; report the rollback point",
        description="Refuses when the newest backup is older than --max-backup-age; restores it with the drill "
        "engine, checks it, runs --rehearse CMD against the copy (timed), checks again. Exit 0 passed, 1 the "
        "migration or a check failed, 2 refused (stale backup, no disk room, bad input), 3 could not verify.",
        epilog=PREMIGRATION_EPILOG,
    )
    pre.add_argument("--config", default=None, help=CONFIG_HELP)
    pre.add_argument("--database", required=True, help="the database, as named in drills.toml")
    pre.add_argument("--layer", choices=["logical", "pgbackrest"], default=None, help="default: logical if set")
    pre.add_argument("--max-backup-age", default=None, help="refuse when the newest backup is older, e.g. 1h")
    pre.add_argument("--rehearse", metavar="CMD", default=None, help="shell command run against the restored copy")
    pre.add_argument(
        "--timeout", default=None, help="stop the command after this long (default target.restore_timeout)"
    )
    pre.add_argument("--take-backup", action="store_true", help="run the logical backup job first (needs --source-dsn)")
    pre.add_argument(
        "--source-dsn",
        default=os.environ.get("RESTOREDRILL_SOURCE_DSN"),
        help="connection string of the database to back up ($RESTOREDRILL_SOURCE_DSN); never the rehearsal's target",
    )

    ledger = _table_command(
        sub,
        "coverage",
        "the coverage ledger: each configured drill's last passing drill against its cadence",
        "Reads the history (reports_dir, or --reports); restores nothing. Exit 0 every configured "
        "drill passed within its cadence (default 31 days), 1 one is overdue or never passed, 2 bad input.",
    )
    ledger.add_argument("--reports", type=Path, default=None, help="the reports folder (default: reports_dir)")

    if "report" in sub.choices:
        sub.choices["report"].add_argument(
            "--merge",
            nargs="+",
            type=Path,
            metavar="DIR",
            default=None,
            help="build ONE report from the evidence of several jobs' report folders (the CI matrix), "
            "written to --reports",
        )


def main(args: argparse.Namespace) -> int:
    from restoredrill.config import load_config

    if args.command == "list":
        from restoredrill.operate import listing

        config = load_config(args.config)
        unknown = [d for d in args.database or [] if d not in config.databases]
        if unknown:
            from restoredrill.errors import ConfigError

            raise ConfigError(f"database '{unknown[0]}' is not in the configuration")
        rows = listing.list_backups(config, args.database)
        if args.json:
            print(listing.render_json(rows))
        else:
            listing.render_table(rows)
        return listing.exit_code(rows)
    if args.command == "doctor":
        from restoredrill.operate import doctor

        findings = doctor.diagnose(args.config)
        print(doctor.render(findings))
        return doctor.exit_code(findings)
    if args.command == "matrix":
        from restoredrill.operate import matrix

        print(matrix.render(load_config(args.config)))
        return 0
    if args.command == "premigration":
        return premigration(args)
    if args.command == "coverage":
        from restoredrill.operate.ledger import coverage

        return coverage(args.config, args.reports, args.json)
    if args.command == "report" and args.merge:
        return merge_report(args)
    raise AssertionError(f"unknown command {args.command}")


def merge_report(args: argparse.Namespace) -> int:
    """`report --merge`: one run from the jobs' folders, rendered by the report builder; exits with the verdict."""
    from restoredrill.operate import merge, notify
    from restoredrill.report.build import build_report
    from restoredrill.report.commands import _config, describe
    from restoredrill.verdicts import judge, planned_drills

    path, config = _config(args.config)
    out = (args.reports or (config.reports_dir if config else Path("reports"))).resolve()
    merged = merge.merge(args.merge, out, args.run_id, path)
    expected = planned_drills(config) if config else None
    built = build_report(
        out, run_id=merged.run_id, config_file=path, expected=expected, allure=args.allure, signing_key=args.signing_key
    )
    print(f"merged {len(merged.records)} drill record(s) of {len(merged.jobs)} job(s) into run {merged.run_id}")
    for folder in merged.empty:
        print(f"restoredrill: warning: {folder} holds no evidence: that job's drills did not run", file=sys.stderr)
    print(describe(built))
    code = judge(merged.records, expected).exit_code  # a configured drill no job ran makes it PARTIAL
    if code in (0, 4) and merged.empty:
        code = 3  # a job left no evidence at all: it did not run, so nothing of it was verified
    if config is not None:
        notify.send(config, code, merged.records, merged.run_id, built.html)
    if built.allure_error:
        print(f"restoredrill: no Allure report: {built.allure_error}", flush=True)
    return code


def premigration(args: argparse.Namespace) -> int:
    from restoredrill.durations import parse_duration
    from restoredrill.errors import ConfigError
    from restoredrill.operate.premigration import Request, rehearse

    def seconds(flag: str, value: str | None) -> float | None:
        try:
            return parse_duration(value) if value is not None else None
        except ValueError as exc:
            raise ConfigError(f"{flag}: {exc}") from None

    if args.source_dsn:
        from restoredrill import proc

        proc.register_secret(args.source_dsn)
    request = Request(
        database=args.database,
        layer=args.layer,
        max_backup_age_s=seconds("--max-backup-age", args.max_backup_age),
        command=args.rehearse,
        take_backup=args.take_backup,
        source_dsn=args.source_dsn,
        timeout_s=seconds("--timeout", args.timeout),
    )
    return rehearse(args.config, request)
