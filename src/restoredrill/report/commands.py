"""`restoredrill report` and `restoredrill verify-report`, and the report at the end of `restoredrill run`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from restoredrill.errors import ConfigError, RestoreDrillError
from restoredrill.report.build import Built, build_report
from restoredrill.report.integrity import load_public_key, verify_folder
from restoredrill.report.redact import redact

COMMANDS = ("report", "verify-report")
LAYERS = ("logical", "pgbackrest", "rds")
EXIT_OK, EXIT_TAMPERED, EXIT_USAGE, EXIT_NOT_DONE = 0, 1, 2, 3


def add_parsers(sub: Any) -> None:
    report = sub.add_parser(
        "report", help="render the HTML drill report (and --allure) from the evidence records of a run"
    )
    report.add_argument(
        "--reports", type=Path, default=None, help="report folder (default: reports_dir of the configuration, else ./reports)"
    )
    report.add_argument("--config", default=None, help="drills.toml (default $RESTOREDRILL_CONFIG or ./drills.toml)")
    report.add_argument("--run", dest="run_id", default=None, help="the run to report (default: the newest)")
    report.add_argument("--allure", action="store_true", help="also build a single-file offline Allure report")
    report.add_argument(
        "--signing-key", default=None, help="Ed25519 private key (PEM file) to sign the manifest ($RESTOREDRILL_SIGNING_KEY)"
    )
    verify = sub.add_parser("verify-report", help="check a report folder against its manifests (SHA-256, Ed25519)")
    verify.add_argument("folder", nargs="?", type=Path, default=Path("reports"), help="report folder (default reports/)")
    verify.add_argument("--public-key", type=Path, default=None, help="Ed25519 public key (PEM) the signature must match")


def expected_drills(config: Any) -> list[tuple[str, str]]:
    """(database, layer) pairs the configuration asks for: a missing record among them is shown as not run."""
    return [
        (name, layer)
        for name, database in config.databases.items()
        for layer in LAYERS
        if getattr(database, layer, None) is not None
    ]


def _config(explicit: str | None) -> tuple[Path | None, Any]:
    from restoredrill.config import config_path, load_config

    path = config_path(explicit)
    if explicit is None and "RESTOREDRILL_CONFIG" not in os.environ and not path.exists():
        return None, None
    return path.resolve(), load_config(path)


def run_report(args: argparse.Namespace) -> int:
    path, config = _config(args.config)
    reports = args.reports or (config.reports_dir if config else Path("reports"))
    built = build_report(
        reports.resolve(),
        run_id=args.run_id,
        config_file=path,
        expected=expected_drills(config) if config else None,
        allure=args.allure,
        signing_key=args.signing_key,
    )
    print(describe(built))
    if built.allure_error:
        print(f"restoredrill: no Allure report: {built.allure_error}", flush=True)
        return EXIT_NOT_DONE
    return EXIT_OK


def describe(built: Built) -> str:
    lines = [
        f"report: {built.html} ({built.verdict.replace('_', ' ').upper()}, {built.drills} drill(s), "
        f"{built.seconds:.2f} s)",
        f"manifest: {built.manifest}" + (f" (signed: {built.signature.name})" if built.signature else " (not signed)"),
    ]
    if built.allure:
        lines.append(f"allure: {built.allure}")
    if built.summary:
        lines.append(f"job summary: appended to {built.summary}")
    return "\n".join(lines)


def run_verify(args: argparse.Namespace) -> int:
    trusted = load_public_key(args.public_key) if args.public_key else None
    result = verify_folder(args.folder, trusted)
    for note in result.notes:
        print(f"note: {note}")
    if result.problems:
        for problem in result.problems:
            print(f"TAMPERED: {problem}")
        print(
            f"restoredrill: {args.folder} does NOT verify: {len(result.problems)} problem(s) "
            f"in {len(result.manifests)} manifest(s)"
        )
        return EXIT_TAMPERED
    signed = f", {len(result.signed)} signature(s) valid" if result.signed else ", unsigned"
    print(f"verified: {result.files} file(s) in {len(result.manifests)} manifest(s) match their SHA-256{signed}")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    return run_verify(args) if args.command == "verify-report" else run_report(args)


def after_run(reports: Path, run_id: str, config_file: Path, config: Any) -> tuple[str, bool]:
    """The report at the end of `restoredrill run`: (what to print, whether it was written)."""
    try:
        built = build_report(reports, run_id=run_id, config_file=config_file, expected=expected_drills(config))
    except ConfigError as exc:
        return f"no report: {exc}", False
    except RestoreDrillError as exc:
        return f"the drill report could not be written: {exc}", False
    except OSError as exc:
        return redact(f"the drill report could not be written: {exc}"), False
    return describe(built), True
