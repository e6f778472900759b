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
    raise AssertionError(f"unknown command {args.command}")
