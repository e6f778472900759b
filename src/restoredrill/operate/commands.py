"""The operating commands' parsers and dispatch: `list`, `doctor`, `matrix`, `premigration`, `report --merge`.

cli.py adds these parsers and hands the parsed arguments here; each command lives in its own module.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("list", "doctor", "matrix", "premigration")
CONFIG_HELP = "drills.toml (default $RESTOREDRILL_CONFIG or ./drills.toml)"


def add_parsers(sub: Any) -> None:
    listing = sub.add_parser(
        "list",
        help="the newest backups per database and layer, their age against the RPO and the restore window",
        description="Read-only: lists each layer's backups with the drills' own discovery; restores nothing. "
        "Exit 0 every layer is within its RPO, 1 a backup is stale or missing, 3 a layer could not be read.",
    )
    listing.add_argument("--config", default=None, help=CONFIG_HELP)
    listing.add_argument("--database", action="append", default=None, help="only this database (repeatable)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

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
    if args.command == "report" and args.merge:
        return merge_report(args)
    raise AssertionError(f"unknown command {args.command}")


def merge_report(args: argparse.Namespace) -> int:
    """`report --merge`: one run from the jobs' folders, rendered by the report builder; exits with the verdict."""
    from restoredrill.evidence import overall_exit_code
    from restoredrill.operate import merge, notify
    from restoredrill.report.build import build_report
    from restoredrill.report.commands import _config, describe, expected_drills

    path, config = _config(args.config)
    out = (args.reports or (config.reports_dir if config else Path("reports"))).resolve()
    merged = merge.merge(args.merge, out, args.run_id, path)
    expected = expected_drills(config) if config else None
    built = build_report(
        out, run_id=merged.run_id, config_file=path, expected=expected, allure=args.allure, signing_key=args.signing_key
    )
    print(f"merged {len(merged.records)} drill record(s) of {len(merged.jobs)} job(s) into run {merged.run_id}")
    print(describe(built))
    code = overall_exit_code(merged.records)
    drilled = {(r.database, r.layer) for r in merged.records}
    if code == 0 and expected and any(pair not in drilled for pair in expected):
        code = 3  # a drill the configuration asks for left no evidence: not everything was verified
    if config is not None:
        notify.send(config, code, merged.records, merged.run_id, built.html)
    if built.allure_error:
        print(f"restoredrill: no Allure report: {built.allure_error}", flush=True)
    return code
