"""Notifications: a Slack-compatible webhook (`{"text": ...}`) told the verdict, the reasons and the report.

drills.toml names the environment variable holding the URL (`notify_env`), never the URL itself: a webhook
URL is a credential. It is registered as a secret, so no log line, warning or record can show it. A webhook
that cannot be reached is a warning on stderr: a notification never changes the verdict.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from restoredrill import proc
from restoredrill.config import DrillConfig
from restoredrill.evidence import DrillRecord, load_records

VERDICTS = {0: "PASSED", 1: "FAILED", 2: "REFUSED", 3: "COULD NOT VERIFY", 130: "INTERRUPTED"}
TIMEOUT_S = 10.0
MAX_REASONS = 10


def message(exit_code: int, records: list[DrillRecord], run_id: str | None, report: Path | None) -> str:
    verdict = VERDICTS.get(exit_code, f"exit {exit_code}")
    passed = sum(r.verdict == "passed" for r in records)
    lines = [
        f"Restore drills {run_id or ''}: {verdict} ({passed} of {len(records)} drill(s) passed)".replace("  ", " ")
    ]
    not_passed = [r for r in records if r.verdict != "passed"]
    for r in not_passed[:MAX_REASONS]:
        variant = f" ({r.variant})" if r.variant else ""
        lines.append(f"- {r.database}/{r.layer}{variant}: {r.verdict.replace('_', ' ')}: {r.reason}")
    if len(not_passed) > MAX_REASONS:
        lines.append(f"- and {len(not_passed) - MAX_REASONS} more")
    if report is not None:
        lines.append(f"Report: {report}")
    return proc.redact("\n".join(lines))


def wanted(config: DrillConfig, exit_code: int) -> bool:
    return config.notify_env is not None and (config.notify_on == "always" or exit_code != 0)


def post(url: str, text: str) -> str | None:
    """POST the message; a sentence saying why it failed, or None when the webhook took it."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked first
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    if not url.startswith(("https://", "http://")):
        return "the webhook URL is not an http(s) URL"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook could not be reached ({proc.redact(str(reason))})"
    return None


def send(
    config: DrillConfig, exit_code: int, records: list[DrillRecord], run_id: str | None, report: Path | None
) -> None:
    """Post when the configuration asks for it; problems are one warning line on stderr."""
    if not wanted(config, exit_code):
        return
    assert config.notify_env is not None
    url = os.environ.get(config.notify_env, "").strip()
    if not url:
        _warn(f"notify_env names {config.notify_env}, which is not set: no notification was sent")
        return
    proc.register_secret(url)
    problem = post(url, message(exit_code, records, run_id, report))
    if problem:
        _warn(f"the notification was not delivered: {problem}; the verdict stands")


def _warn(text: str) -> None:
    print(f"restoredrill: warning: {proc.redact(text)}", file=sys.stderr, flush=True)


def report_of(reports_dir: Path, run_id: str) -> Path | None:
    from restoredrill.report.build import report_base

    path = reports_dir / f"{report_base(reports_dir, run_id)}.html"
    return path if path.is_file() else None


def after_run(config_file: str | None, exit_code: int) -> int:
    """After `restoredrill run`: notify about the run just finished. Returns the run's exit code unchanged."""
    from restoredrill.config import load_config
    from restoredrill.errors import RestoreDrillError

    run_id = os.environ.get("RESTOREDRILL_RUN_ID")
    try:
        config = load_config(config_file)
    except RestoreDrillError:
        return exit_code  # the run already said why its configuration is unusable
    if not wanted(config, exit_code):
        return exit_code
    records = load_records(config.reports_dir, run_id) if run_id and (config.reports_dir / "evidence").is_dir() else []
    send(config, exit_code, records, run_id, report_of(config.reports_dir, run_id) if run_id else None)
    return exit_code
