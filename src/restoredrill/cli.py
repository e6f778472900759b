"""`restoredrill demo | run | backup logical | janitor | report | verify-report`: one sentence, non-zero exit."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from restoredrill import __version__, proc
from restoredrill.errors import BackupDefect, ConfigError, RestoreDrillError
from restoredrill.operate import commands as operate_commands
from restoredrill.report import commands as report_commands
from restoredrill.verdicts import (
    EXIT_CODES_HELP,
    EXIT_COULD_NOT_VERIFY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
)
from restoredrill.verdicts import EXIT_PASSED as EXIT_OK

if TYPE_CHECKING:
    from restoredrill.config import DrillConfig

PROJECT = Path(__file__).resolve().parents[2]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"restoredrill: {message} (see restoredrill --help)\n")


def _days(text: str) -> int:
    """--retention-days: below 1 a dry run once listed every date folder but today's for deletion."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a whole number of days, at least 1")
    return days


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="restoredrill", description="Prove PostgreSQL backups restore, by restoring them.")
    parser.add_argument("--version", action="version", version=f"restoredrill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="build the embedded demo (source, backups, config) and drill it")
    demo.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo lives (default .demo/)")
    demo.add_argument("--reports", type=Path, default=Path("reports"), help="report folder (default reports/)")
    demo.add_argument("--build-only", action="store_true", help="build the demo and its drills.toml, drill nothing")

    run = sub.add_parser(
        "run",
        help="run the drills of a configuration; extra arguments go to pytest",
        description="Run the drills of a configuration under pytest. Every argument restoredrill does not know "
        "is passed to pytest as it is, e.g. `restoredrill run -k shop`, `-n 2`, `-x`, `--junitxml FILE`.",
        epilog=EXIT_CODES_HELP + "\n\nexample: restoredrill run --config drills.toml -k 'shop and logical' -n 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", default=None, help="drills.toml (default $RESTOREDRILL_CONFIG or ./drills.toml)")

    backup = sub.add_parser("backup", help="backup jobs")
    layers = backup.add_subparsers(dest="layer", required=True, parser_class=_Parser)
    logical = layers.add_parser("logical", help="pg_dump -Fc, verify, upload with SSE + metadata + manifest, prune")
    logical.add_argument("--dbname", required=True, help="connection string of the database to dump")
    logical.add_argument("--to", required=True, help="s3://bucket/postgres/logical/ or file:///folder/")
    logical.add_argument("--name", help="the <db> part of the key (default: the database name)")
    logical.add_argument(
        "--sse",
        choices=["AES256", "aws:kms", "none"],
        default="AES256",
        help="S3 server-side encryption (default AES256)",
    )
    logical.add_argument("--kms-key-id", help="KMS key for --sse aws:kms")
    logical.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible stores, tests)")
    logical.add_argument("--region")
    logical.add_argument("--profile")
    logical.add_argument("--retention-days", type=_days, default=30, help="prune date folders older than this (>= 1)")
    logical.add_argument(
        "--content-hash-max-mb",
        type=int,
        default=1024,
        help="record a content hash of every table up to this size in the manifest (default 1024 MB)",
    )
    logical.add_argument(
        "--no-content-hashes", action="store_true", help="record row counts only (this database's choice)"
    )
    logical.add_argument(
        "--dry-run",
        action="store_true",
        help="dump and verify, but upload and delete nothing; list what pruning would delete",
    )

    janitor = sub.add_parser(
        "janitor",
        help="remove what crashed drills left: throwaway instances, containers, expired temporary RDS instances",
    )
    janitor.add_argument("--workdir", type=Path, default=None)
    janitor.add_argument(
        "--config",
        default=None,
        help="also its target.workdir and RDS accounts (default $RESTOREDRILL_CONFIG, or ./drills.toml if present)",
    )
    report_commands.add_parsers(sub)  # report, verify-report
    operate_commands.add_parsers(sub)  # list, doctor, matrix, premigration, report --merge
    return parser


def _exit_code(error: RestoreDrillError) -> int:
    if isinstance(error, ConfigError):
        return EXIT_USAGE
    if isinstance(error, BackupDefect):
        return EXIT_FAILED
    return EXIT_COULD_NOT_VERIFY


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so every `finally` (and pytest's teardown) cleans up on SIGTERM too


def _janitor_config(explicit: str | None) -> DrillConfig | None:
    """The configuration `run` would use, if there is one: its workdir and RDS accounts may hold leftovers."""
    from restoredrill.config import config_path, load_config

    if explicit is None and not config_path().exists() and "RESTOREDRILL_CONFIG" not in os.environ:
        return None
    return load_config(explicit)


def _janitor(explicit_config: str | None, workdir: Path | None) -> int:
    """Throwaway folders and servers, drill containers, and expired temporary RDS instances."""
    from restoredrill.evidence import utcnow
    from restoredrill.layers import rds_api
    from restoredrill.targets import container, local

    config = _janitor_config(explicit_config)
    removed = [
        *map(str, local.janitor_everywhere(config.target.workdir if config else None, workdir)),
        *container.janitor(),
    ]
    problems: list[str] = []
    if config is not None:
        sources = [config.databases[name].rds for name in config.databases_with("rds")]
        instances, problems = rds_api.janitor_accounts([s for s in sources if s is not None], utcnow())
        removed += [f"RDS instance {name}" for name in instances]
    print(f"janitor: removed {len(removed)} leftover(s)" + (f": {', '.join(removed)}" if removed else ""))
    for problem in problems:
        print(f"restoredrill: {problem}", file=sys.stderr)
    return EXIT_COULD_NOT_VERIFY if problems else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    # `restoredrill run &` in a non-interactive shell inherits SIGINT ignored: such a run could not be
    # interrupted at all. Ctrl-C must always stop a drill, clean up, and exit 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    proc.register_environment_secrets()
    args, extra = _parser().parse_known_args(argv)
    if extra and args.command != "run":
        print(f"restoredrill: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            from restoredrill.operate import notify
            from restoredrill.runner import run_drills

            return notify.after_run(args.config, run_drills(args.config, extra))
        if args.command == "demo":
            from restoredrill.demo import build_demo
            from restoredrill.folders import writable_folder
            from restoredrill.runner import run_drills

            writable_folder(args.dir, "the demo folder")
            writable_folder(args.reports, "the reports folder")
            config = build_demo(args.dir, args.reports)
            if args.build_only:
                return EXIT_OK
            return run_drills(str(config), [])
        if args.command == "backup":
            from restoredrill.backup import backup_logical

            result = backup_logical(
                args.dbname,
                args.to,
                name=args.name,
                endpoint_url=args.endpoint_url,
                region=args.region,
                profile=args.profile,
                sse=None if args.sse == "none" else args.sse,
                kms_key_id=args.kms_key_id,
                retention_days=args.retention_days,
                dry_run=args.dry_run,
                content_hash_max_bytes=None if args.no_content_hashes else args.content_hash_max_mb * 1024**2,
            )
            print(
                f"backup {'verified (dry run)' if args.dry_run else 'done'}: {result.location}, "
                f"{result.tables} tables, {result.rows} rows, sha256 {result.sha256}"
            )
            return EXIT_OK
        if args.command in operate_commands.COMMANDS or getattr(args, "merge", None):
            return operate_commands.main(args)
        if args.command in report_commands.COMMANDS:
            return report_commands.main(args)
        if args.command == "janitor":
            return _janitor(args.config, args.workdir)
    except RestoreDrillError as exc:
        print(f"restoredrill: {proc.redact(str(exc))}", file=sys.stderr)
        return _exit_code(exc)
    except Exception as exc:  # never a traceback for users; RESTOREDRILL_DEBUG=1 shows it
        if os.environ.get("RESTOREDRILL_DEBUG"):
            raise
        message = proc.redact(str(exc)).strip().splitlines()
        print(
            f"restoredrill: unexpected {type(exc).__name__}: {message[0] if message else ''} "
            "(set RESTOREDRILL_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_COULD_NOT_VERIFY
    except KeyboardInterrupt:
        print("restoredrill: interrupted; throwaway instances were removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
