"""From evidence records to the report folder: the HTML report, the optional Allure report, the
manifest (and signature), and the CI job summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import DrillRecord, iso, utcnow
from restoredrill.evidence_store import EvidenceStore
from restoredrill.report.allure import build_allure
from restoredrill.report.context import read_run_context
from restoredrill.report.history import key_of, load_history, parse_time
from restoredrill.report.html import render
from restoredrill.report.integrity import (
    MANIFEST_SUFFIX,
    SIGNATURE_SUFFIX,
    key_id,
    load_signing_key,
    sha256_file,
    write_manifest,
)
from restoredrill.report.model import drill_view, order_key
from restoredrill.report.overview import report_view
from restoredrill.report.records import load_run
from restoredrill.report.redact import redact, register_config_secrets
from restoredrill.report.summary import append_step_summary
from restoredrill.verdicts import PlannedDrill


@dataclass(frozen=True)
class Built:
    html: Path
    manifest: Path
    signature: Path | None
    envelope: Path | None  # the DSSE envelope (in-toto Statement) beside a signed manifest
    allure: Path | None
    allure_error: str | None
    summary: Path | None
    verdict: str
    drills: int
    seconds: float


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def scrubbed(record: DrillRecord) -> DrillRecord:
    """The record with every text redacted, before any of it is laid out (escaping comes after)."""
    return DrillRecord.model_validate(_scrub(record.model_dump()))


def report_base(reports_dir: Path, run_id: str) -> str:
    """`drill-report-<date>`; a second run on the same day gets the time too, never overwriting the first."""
    moment = parse_time(None, run_id) or utcnow()
    base = f"drill-report-{moment:%Y-%m-%d}"
    manifest = reports_dir / f"{base}{MANIFEST_SUFFIX}"
    if manifest.exists():
        try:
            owner = json.loads(manifest.read_text(encoding="utf-8")).get("run_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != run_id:
            base = f"drill-report-{moment:%Y-%m-%dT%H%M%SZ}"
    return base


def _cadences(config_file: Path | None) -> dict[str, Any]:
    """The coverage cadences of the configuration, when it can be read; else the report uses the default."""
    from restoredrill.config import load_config
    from restoredrill.errors import ConfigError

    if config_file is None:
        return {}
    try:
        config = load_config(config_file)
    except ConfigError:
        return {}
    known = set(config.databases)
    return {
        "cadence_s": lambda db: config.cadence(db) if db in known else config.coverage.cadence,
        "cadence_source": f"the cadences of {config_file.name}",
    }


def build_report(
    reports_dir: Path,
    *,
    run_id: str | None = None,
    config_file: Path | None = None,
    expected: list[PlannedDrill] | None = None,
    allure: bool = False,
    signing_key: str | Path | None = None,
    store: EvidenceStore | None = None,
) -> Built:
    """Render everything for one run (the newest when run_id is None). Bad input raises ConfigError."""
    started = time.monotonic()
    register_config_secrets(config_file)
    key = load_signing_key(signing_key)  # a bad key is refused before anything is written
    run = load_run(reports_dir, run_id)
    pairs = sorted(
        ((scrubbed(r), p) for r, p in zip(run.records, run.files, strict=True)),
        key=lambda pair: (order_key(pair[0]), pair[1].name),
    )
    records = [record for record, _path in pairs]
    context, context_file = read_run_context(reports_dir, run.run_id, config_file)
    recorded = context.planned_drills()  # the plan written at run start wins over today's configuration
    planned = recorded if recorded is not None else expected
    history = load_history(reports_dir, records, up_to_run=run.run_id, store=store)  # the store's, when one
    drills = []
    for index, (record, path) in enumerate(pairs, start=1):
        points = history.series.get(key_of(record), [])
        drills.append(drill_view(index, record, path.relative_to(reports_dir).as_posix(), sha256_file(path), points))
    junit = reports_dir / "junit" / f"{run.run_id}.xml"
    covered = [*run.files, *([context_file] if context_file else []), *([junit] if junit.is_file() else [])]
    base = report_base(reports_dir, run.run_id)
    signing = (
        f"The manifest is signed with Ed25519 key {key_id(key.public_key())} ({base}{SIGNATURE_SUFFIX})."
        if key
        else "The manifest is not signed (set RESTOREDRILL_SIGNING_KEY to sign it with Ed25519)."
    )
    view = report_view(
        drills=drills,
        planned=planned,
        context=context,
        history=history,
        generated_at=iso(utcnow()) or "",
        integrity=[(p.relative_to(reports_dir).as_posix(), sha256_file(p), p.stat().st_size) for p in covered],
        signing=signing,
        manifest_name=f"{base}{MANIFEST_SUFFIX}",
        **_cadences(config_file),
    )
    html_path = reports_dir / f"{base}.html"
    html_path.write_text(render(view), encoding="utf-8")
    allure_path, allure_error = None, None
    if allure:
        try:
            allure_path = build_allure(
                reports_dir,
                reports_dir / f"{base.replace('drill-report', 'allure-report')}.html",
                records,
                context,
                history.runs,
            )
        except CouldNotVerify as exc:
            allure_error = str(exc)
    written = write_manifest(
        reports_dir,
        base,
        run.run_id,
        [html_path, *covered, *([allure_path] if allure_path else [])],
        key,
        history_head=history.head,
    )
    summary = append_step_summary(view, html_path.name)
    return Built(
        html=html_path,
        manifest=written[0],
        signature=written[1] if len(written) > 1 else None,
        envelope=written[2] if len(written) > 2 else None,
        allure=allure_path,
        allure_error=allure_error,
        summary=summary,
        verdict=view.verdict,
        drills=len(drills),
        seconds=time.monotonic() - started,
    )
