"""The drill record: data first, every report is rendered from it (README, "Evidence and reports")."""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from restoredrill import __version__, history_chain, proc

# partial: every check that ran passed, but the selection (-k, node ids) left checks of this drill out.
Verdict = Literal["passed", "partial", "failed", "could_not_verify"]


class Outcome(StrEnum):
    """What one check established. Only `passed` proves anything; the last two prove nothing and are shown
    as such (a check that did not apply, or never ran, is never counted as passed)."""

    PASSED = "passed"
    FAILED = "failed"  # the backup is bad: the drill fails
    ERROR = "error"  # the check ran, or tried to, and could not verify
    NOT_APPLICABLE = "not_applicable"  # does not apply to this backup (e.g. a dump made by another tool)
    NOT_RUN = "not_run"  # never ran: the drill stopped before it, and the drill's reason says why


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def new_run_id() -> str:
    return f"{utcnow():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


class BackupInfo(BaseModel):
    id: str | None = None
    taken_at: str | None = None
    location: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    sha256_expected: str | None = None
    server_version: str | None = None
    pg_dump_version: str | None = None
    manifest: str | None = None
    manifest_sha256: str | None = None
    manifest_sha256_expected: str | None = None
    database: str | None = Field(None, description="the database named in the archive header")
    database_expected: str | None = None


class Stages(BaseModel):
    fetch_s: float | None = None
    restore_s: float | None = None
    recovery_s: float | None = None
    checks_s: float | None = None
    cleanup_s: float | None = None


class Objectives(BaseModel):
    rto_s: float
    rpo_s: float


class CheckRecord(BaseModel):
    name: str
    outcome: Outcome
    detail: str
    sql: str | None = None
    duration_s: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _older_records(cls, data: Any) -> Any:
        # Records written before outcomes were typed said "error" with a "not run:" detail.
        if (
            isinstance(data, dict)
            and data.get("outcome") == "error"
            and str(data.get("detail", "")).startswith("not run:")
        ):
            return {**data, "outcome": Outcome.NOT_RUN}
        return data

    @field_validator("detail", "sql")
    @classmethod
    def _redacted(cls, text: str | None) -> str | None:
        # Redacted ONCE, where it is made: the assertion message, stdout, JUnit XML, Allure results and
        # attachments are all built from these values, so no sink has to remember to redact them.
        return None if text is None else proc.redact(text)


class TargetInfo(BaseModel):
    kind: str = "local"
    server_version: str | None = None
    bindir: str | None = None
    startup_s: float | None = None
    instance: dict[str, object] = Field(default_factory=dict, description="a temporary cloud instance, read back")
    image: str | None = None
    image_id: str | None = None
    image_digest: str | None = None


class Shape(BaseModel):
    """What the restored database looked like, for drift against the last passing drill: names and counts only,
    never row content. Works without a manifest (dumps made by other tools)."""

    database_size_bytes: int | None = None
    rows: dict[str, int] = Field(default_factory=dict, description="exact count(*) per table, by qualified name")
    objects: dict[str, list[str]] = Field(
        default_factory=dict, description="per kind (schemas, tables, columns, indexes, ...): sorted object names"
    )


class StorageCost(BaseModel):
    """One layer's stored backups of one database and their monthly cost (restoredrill.cost)."""

    storage: str = Field(description='where they live: "S3 Standard", "block volume (EBS gp3)", ...')
    size_bytes: int
    basis: str = Field(description="what was measured, in one sentence")
    price_gb_month: float
    currency: str
    monthly: float


class DrillRecord(BaseModel):
    run_id: str
    database: str
    layer: Literal["logical", "pgbackrest", "rds"]
    target: Literal["local", "container", "rds"] = "local"
    verdict: Verdict = "could_not_verify"
    reason: str | None = "the drill did not finish"
    backup: BackupInfo = Field(default_factory=BackupInfo)
    recovery_target: str = "latest"
    variant: str | None = Field(None, description="which drill of the layer, e.g. the pgBackRest recovery kind")
    stages: Stages = Field(default_factory=Stages)
    rto_s: float | None = None
    rpo_s: float | None = None
    rpo_detail: dict[str, float | str | int | None] = Field(default_factory=dict)
    objectives: Objectives
    checks: list[CheckRecord] = Field(default_factory=list)
    left_out: list[str] = Field(
        default_factory=list,
        description="checks of this drill that never ran: the selection left them out, or the session stopped first",
    )
    largest_tables: list[dict[str, bool | int | str]] = Field(default_factory=list)
    backup_sets: list[dict[str, object]] = Field(default_factory=list)
    replay: dict[str, object] = Field(
        default_factory=dict, description="pgBackRest: the set restored, where replay ended, and the server's words"
    )
    target_info: TargetInfo = Field(default_factory=TargetInfo)
    shape: Shape | None = Field(None, description="the restored database's shape, measured by the drift check")

    storage: StorageCost | None = Field(None, description="the layer's stored backups and their monthly cost")
    notes: list[str] = Field(default_factory=list)
    refused: bool = Field(False, description="the drill did not start: its configuration or host is unfit (exit 2)")
    started_at: str = Field(default_factory=lambda: iso(utcnow()) or "")
    finished_at: str | None = None
    tool_versions: dict[str, str] = Field(default_factory=dict)
    host: str = Field(default_factory=socket.gethostname)
    run_by: str = Field(default_factory=lambda: run_by())

    def add_check(self, check: CheckRecord) -> None:
        self.checks = [c for c in self.checks if c.name != check.name] + [check]

    def to_json(self) -> str:
        # Redact once more on the way out: the record is evidence and must never carry a secret. Each text is
        # redacted before serializing: a pattern run over the JSON text could eat a closing quote.
        return json.dumps(_redacted(self.model_dump(mode="json")), indent=2, ensure_ascii=False)

    def file_name(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.database)
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.run_id}--{safe}--{self.layer}{variant}.json"

    def write(self, reports_dir: Path) -> Path:
        folder = reports_dir / "evidence"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.file_name()
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        append_history(reports_dir, self)
        return path


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return proc.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def run_by() -> str:
    """Who ran the drill: the CI run when there is one, else the OS user."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        repo = os.environ.get("GITHUB_REPOSITORY", "?")
        return f"github-actions:{repo}#{os.environ.get('GITHUB_RUN_ID', '?')} ({os.environ.get('GITHUB_ACTOR', '?')})"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def base_tool_versions() -> dict[str, str]:
    return {"restoredrill": __version__, "python": platform.python_version()}


def history_line(record: DrillRecord) -> dict[str, object]:
    """What one drill leaves in the history: counts and timings, never row content (chain fields are added
    by append_history)."""
    return {
        "run_id": record.run_id,
        "database": record.database,
        "layer": record.layer,
        "variant": record.variant,
        "target": record.target,
        "verdict": record.verdict,
        "rto_s": record.rto_s,
        "rpo_s": record.rpo_s,
        "objectives": record.objectives.model_dump(),
        "finished_at": record.finished_at,
        # drift compares the next drill with this one (names and counts only, never row content)
        "shape": record.shape.model_dump() if record.shape is not None else None,
    }


def append_history(reports_dir: Path, record: DrillRecord) -> bytes:
    """THE way to add a drill to reports/history.jsonl: one hash-chained line (restoredrill.history_chain);
    returns the stored bytes. Read it back with history_chain.read_history."""
    return history_chain.append(reports_dir, history_line(record))


def load_records(reports_dir: Path, run_id: str | None = None) -> list[DrillRecord]:
    folder = reports_dir / "evidence"
    pattern = f"{run_id}--*.json" if run_id else "*.json"
    return [DrillRecord.model_validate_json(p.read_text()) for p in sorted(folder.glob(pattern))]
