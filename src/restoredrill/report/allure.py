"""`restoredrill report --allure`: a single-file offline Allure 2 report, rendered from the evidence records.

Every check of every drill becomes one Allure test with a stable history id, so Allure's own trends work;
its failure categories are the report's five; environment.properties and executor.json say where the run
happened; Allure's history is carried between runs in reports/allure-history/. The Allure command line
(npm `allure-commandline`, Java 17) is used when present; when it is not, this says so and fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from restoredrill import proc
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import CheckRecord, DrillRecord, Outcome
from restoredrill.report.classify import CATEGORIES, check_category, check_hint, drill_category, drill_hint
from restoredrill.report.context import PROJECT, RunContext
from restoredrill.report.history import parse_time
from restoredrill.report.model import LAYER_LABEL
from restoredrill.report.redact import redact

HISTORY_DIR = "allure-history"
_STATUS = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped"}
_ANALYTICS = re.compile(r"googletagmanager|google-analytics|gtag\(", re.IGNORECASE)
_EMBEDDED_HISTORY = re.compile(r"d\('history/([\w.-]+\.json)','([A-Za-z0-9+/=]*)'\)")
INSTALL_HINT = "scripts/install-report-tools.sh installs it, or: npm i -g allure-commandline, with Java 17"


def find_allure() -> list[str]:
    """The Allure 2 command line, or CouldNotVerify in one sentence."""
    explicit = os.environ.get("RESTOREDRILL_ALLURE")
    candidates = [explicit] if explicit else [shutil.which("allure"), str(PROJECT / "node_modules" / ".bin" / "allure")]
    found = next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)
    if found is None:
        where = f"RESTOREDRILL_ALLURE={explicit} is not an executable" if explicit else "it is not on PATH"
        raise CouldNotVerify(f"the Allure command line is not available ({where}; {INSTALL_HINT})")
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        raise CouldNotVerify(f"the Allure command line needs Java, which is not installed ({INSTALL_HINT})")
    return [found]


def _ms(text: str | None) -> int:
    moment = parse_time(text)
    return int(moment.timestamp() * 1000) if moment else 0


def _digest(*parts: str) -> str:
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


def _attach(folder: Path, name: str, text: str, kind: str, ext: str) -> dict[str, str]:
    source = f"{uuid.uuid4()}-attachment.{ext}"
    (folder / source).write_text(redact(text), encoding="utf-8")
    return {"name": name, "source": source, "type": kind}


def _result(folder: Path, record: DrillRecord, check: CheckRecord | None, status: str) -> dict[str, Any]:
    name = check.name if check else "drill"
    start = _ms(record.started_at)
    duration = check.duration_s if check and check.duration_s is not None else 0.0
    if check and check.name == "restore" and record.rto_s is not None:
        duration = record.rto_s
    detail = check.detail if check else (record.reason or "the drill recorded no check")
    category = (check_category(check) if check else drill_category(record)) if status in ("failed", "broken") else None
    hint = (check_hint(check) if check else drill_hint(record)) if category else None
    layer = record.layer + (f" ({record.variant})" if record.variant else "")
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "historyId": _digest(record.database, layer, name),
        "testCaseId": _digest(record.database, layer, name),
        "name": f"{record.database} / {layer}: {name}",
        "fullName": f"restore-drills.{layer}.{record.database}.{name}",
        "status": status,
        "description": detail,
        "start": start,
        "stop": start + int(duration * 1000),
        "labels": [
            {"name": "epic", "value": "restore drills"},
            {"name": "feature", "value": LAYER_LABEL.get(record.layer, record.layer)},
            {"name": "story", "value": record.database},
            {"name": "parentSuite", "value": "restore drills"},
            {"name": "suite", "value": record.database},
            {"name": "subSuite", "value": layer},
            {"name": "host", "value": record.host},
            {"name": "framework", "value": "restoredrill"},
            {"name": "severity", "value": "critical" if name in ("restore", "drill", "rto") else "normal"},
        ],
        "parameters": [
            {"name": "target", "value": record.target},
            {"name": "recovery target", "value": record.recovery_target},
            {"name": "backup", "value": record.backup.id or "none found"},
        ],
        "attachments": [],
    }
    if category:
        result["statusDetails"] = {"message": detail, "trace": f"category: {category}\nwhat to do: {hint}"}
    elif status == "skipped":
        result["statusDetails"] = {"message": detail}
    if check and check.sql:
        result["attachments"].append(_attach(folder, "sql", check.sql, "text/plain", "txt"))
    if name in ("restore", "drill"):
        result["attachments"].append(
            _attach(folder, f"evidence {record.database} {record.layer}", record.to_json(), "application/json", "json")
        )
    return result


def _status(check: CheckRecord) -> str:
    """A check that never ran because the drill stopped earlier is skipped in Allure (the drill's own
    failing item carries the category); one that ran and could not finish is broken."""
    if check.outcome in (Outcome.NOT_RUN, Outcome.NOT_APPLICABLE):
        return "skipped"
    return _STATUS[check.outcome]


def _results_of(folder: Path, record: DrillRecord) -> list[dict[str, Any]]:
    results = [_result(folder, record, c, _status(c)) for c in record.checks]
    if not record.checks:
        status = {"passed": "passed", "failed": "failed"}.get(record.verdict, "broken")
        results.append(_result(folder, record, None, status))
    return results


def _escape_property(text: str, key: bool = False) -> str:
    out = text.replace("\\", "\\\\").replace("\n", " ")
    if key:
        out = re.sub(r"([=: #!])", r"\\\1", out)
    return "".join(ch if ord(ch) < 128 else f"\\u{ord(ch):04x}" for ch in out)


def write_results(folder: Path, records: list[DrillRecord], context: RunContext, history: Path, order: int) -> int:
    """Allure 2 results for the records in `folder`; returns how many tests were written."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for record in records:
        for result in _results_of(folder, record):
            (folder / f"{result['uuid']}-result.json").write_text(redact(json.dumps(result)), encoding="utf-8")
            count += 1
    categories = [
        {
            "name": category.capitalize(),
            "matchedStatuses": ["broken"] if category == "could not verify" else ["failed"],
            "traceRegex": f"(?s).*category: {category}.*",
        }
        for category in CATEGORIES
    ]
    (folder / "categories.json").write_text(json.dumps(categories, indent=2), encoding="utf-8")
    tools = {f"tool.{k}": v for r in records for k, v in r.tool_versions.items()}
    props = {
        "run": context.run_id,
        "suite commit": context.git_commit or "unknown",
        "host": ", ".join(sorted({r.host for r in records})),
        "run by": ", ".join(sorted({r.run_by for r in records})),
        "targets": ", ".join(sorted({f"{r.target} {r.target_info.server_version or ''}".strip() for r in records})),
        "ci run": context.ci.get("run_url", "none"),
        **tools,
    }
    lines = [f"{_escape_property(k, key=True)}={_escape_property(v)}" for k, v in props.items()]
    (folder / "environment.properties").write_text(redact("\n".join(lines) + "\n"), encoding="utf-8")
    executor = {
        "name": "GitHub Actions" if context.ci.get("provider") == "github-actions" else "restoredrill",
        "type": "github" if context.ci.get("provider") == "github-actions" else "restoredrill",
        "buildOrder": order,
        "buildName": context.run_id,
        "buildUrl": context.ci.get("run_url", ""),
        "reportName": f"Restore drills {context.run_id}",
    }
    (folder / "executor.json").write_text(redact(json.dumps(executor)), encoding="utf-8")
    if history.is_dir():
        shutil.copytree(history, folder / "history", dirs_exist_ok=True)
    return count


def build_allure(reports_dir: Path, output: Path, records: list[DrillRecord], context: RunContext, order: int) -> Path:
    """Generate the single-file report at `output`, and carry Allure's history for the next run."""
    allure = find_allure()
    history = reports_dir / HISTORY_DIR
    with tempfile.TemporaryDirectory(prefix="restoredrill-allure-") as tmp:
        results, out = Path(tmp) / "results", Path(tmp) / "out"
        write_results(results, records, context, history, order)
        generated = proc.run(
            [*allure, "generate", "--single-file", "--clean", "-o", str(out), str(results)],
            timeout=600,
            env={"ALLURE_NO_ANALYTICS": "true"},
            what="allure generate",
        )
        index = out / "index.html"
        if generated.returncode != 0 or not index.is_file():
            raise CouldNotVerify(f"allure generate failed (exit {generated.returncode}): {generated.tail(2)}")
        text = index.read_text(encoding="utf-8")
        if _ANALYTICS.search(text):
            raise CouldNotVerify("the generated Allure report embeds an analytics tag, so it was not kept")
        output.write_text(text, encoding="utf-8")
    history.mkdir(exist_ok=True)
    for name, data in _EMBEDDED_HISTORY.findall(text):
        (history / name).write_bytes(base64.b64decode(data))
    return output
