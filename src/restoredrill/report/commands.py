"""`restoredrill report` and `restoredrill verify-report`, and the report at the end of `restoredrill run`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from restoredrill.errors import ConfigError, RestoreDrillError
from restoredrill.evidence_store import EvidenceStore, open_evidence_store
from restoredrill.report.build import Built, build_report
from restoredrill.report.context import write_run_context
from restoredrill.report.integrity import load_public_key, load_signing_key, verify_folder
from restoredrill.report.redact import redact, register_config_secrets
from restoredrill.verdicts import PlannedDrill, planned_drills

COMMANDS = ("report", "verify-report")
EXIT_OK, EXIT_TAMPERED, EXIT_USAGE, EXIT_NOT_DONE = 0, 1, 2, 3


def add_parsers(sub: Any) -> None:
    report = sub.add_parser(
        "report", help="render the HTML drill report (and --allure) from the evidence records of a run"
    )
    report.add_argument(
        "--reports",
        type=Path,
        default=None,
        help="report folder (default: reports_dir of the configuration, else ./reports)",
    )
    report.add_argument("--config", default=None, help="drills.toml (default $RESTOREDRILL_CONFIG or ./drills.toml)")
    report.add_argument("--run", dest="run_id", default=None, help="the run to report (default: the newest)")
    report.add_argument("--allure", action="store_true", help="also build a single-file offline Allure report")
    report.add_argument(
        "--signing-key",
        default=None,
        help="Ed25519 private key (PEM file) to sign the manifest ($RESTOREDRILL_SIGNING_KEY)",
    )
    verify = sub.add_parser("verify-report", help="check a report folder against its manifests (SHA-256, Ed25519)")
    verify.add_argument(
        "folder", nargs="?", type=Path, default=Path("reports"), help="report folder (default reports/)"
    )
    verify.add_argument(
        "--public-key", type=Path, default=None, help="Ed25519 public key (PEM) the signature must match"
    )
    verify.add_argument(
        "--evidence-store",
        default=None,
        metavar="S3_URL",
        help="check the history chain kept in an evidence store (s3://bucket/prefix) instead of a folder",
    )
    verify.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint of the evidence store")
    verify.add_argument("--region", default=None, help="region of the evidence store's bucket")


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
        expected=planned_drills(config) if config else None,
        allure=args.allure,
        signing_key=args.signing_key,
        store=open_evidence_store(config) if config else None,  # history read back from the evidence store
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
    if built.envelope:
        lines.append(f"attestation: {built.envelope} (in-toto Statement v1 in a DSSE envelope, Ed25519)")
    if built.allure:
        lines.append(f"allure: {built.allure}")
    if built.summary:
        lines.append(f"job summary: appended to {built.summary}")
    return "\n".join(lines)


def _verify_store(args: argparse.Namespace) -> int:
    if not str(args.evidence_store).startswith("s3://") or not args.evidence_store[5:].split("/")[0]:
        raise ConfigError(f"--evidence-store {args.evidence_store} must be s3://bucket/prefix")
    store = EvidenceStore(args.evidence_store, args.endpoint_url, args.region, None)
    check = store.verify()
    for note in check.notes:
        print(f"note: {note}")
    if check.problems:
        for problem in check.problems:
            print(f"TAMPERED: {problem}")
        print(f"restoredrill: the history in {args.evidence_store} does NOT verify: {len(check.problems)} problem(s)")
        return EXIT_TAMPERED
    print(f"history: {check.chained} hash-chained line(s) intact in {args.evidence_store}")
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    if args.evidence_store:
        return _verify_store(args)
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
    if result.envelopes:
        signed += f", {len(result.envelopes)} DSSE envelope(s) valid"
    print(f"verified: {result.files} file(s) in {len(result.manifests)} manifest(s) match their SHA-256{signed}")
    if result.history is not None:
        chain = result.history
        legacy = f" ({chain.legacy} legacy line(s) without a hash)" if chain.legacy else ""
        print(f"history: {chain.chained} hash-chained line(s) intact{legacy}")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    return run_verify(args) if args.command == "verify-report" else run_report(args)


def before_run(reports: Path, run_id: str, config_file: Path, planned: list[PlannedDrill] | None = None) -> None:
    """At the start of `restoredrill run`: a bad signing key stops the run here (one sentence, exit 2),
    not after hours of drills; the suite's commit, the CI run and the planned drills are recorded for the report."""
    register_config_secrets(config_file)
    load_signing_key()
    write_run_context(reports, run_id, config_file, planned)


def after_run(say: Callable[[str], object], reports: Path, run_id: str, config_file: Path, config: Any) -> bool:
    """The report at the end of `restoredrill run`; False when it could not be written (never silently)."""
    if not any((reports / "evidence").glob(f"{run_id}--*.json")):
        return True  # no drill left a record: the run's verdict already says nothing was verified
    try:
        built = build_report(reports, run_id=run_id, config_file=config_file, expected=planned_drills(config))
    except Exception as exc:  # the run's verdict must survive a report bug; RESTOREDRILL_DEBUG=1 shows it
        if os.environ.get("RESTOREDRILL_DEBUG") and not isinstance(exc, RestoreDrillError | OSError):
            raise
        say(redact(f"restoredrill: the drill report could not be written: {exc}"))
        return False
    say(describe(built))
    return True
