"""The evidence records of one run, read from reports/evidence/ with one sentence for every problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from restoredrill.errors import ConfigError
from restoredrill.evidence import DrillRecord


@dataclass(frozen=True)
class RunRecords:
    reports_dir: Path
    run_id: str
    records: list[DrillRecord]
    files: list[Path]


def run_of(path: Path) -> str:
    """The run id part of an evidence file name `<run_id>--<db>--<layer>.json`."""
    return path.name.split("--", 1)[0]


def evidence_files(reports_dir: Path) -> list[Path]:
    if not reports_dir.is_dir():
        raise ConfigError(
            f"the reports folder {reports_dir} does not exist (run `restoredrill run` first, or pass --reports)"
        )
    folder = reports_dir / "evidence"
    files = sorted(folder.glob("*--*.json")) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"there are no evidence records in {folder}: nothing to report (run the drills first)")
    return files


def load_run(reports_dir: Path, run_id: str | None = None) -> RunRecords:
    """The records of `run_id`, or of the newest run in the folder."""
    files = evidence_files(reports_dir)
    runs = sorted({run_of(p) for p in files})
    chosen = run_id or runs[-1]
    mine = [p for p in files if run_of(p) == chosen]
    if not mine:
        raise ConfigError(f"no evidence records of run '{chosen}' in {reports_dir / 'evidence'} (newest: {runs[-1]})")
    records = []
    for path in mine:
        try:
            records.append(DrillRecord.model_validate_json(path.read_bytes()))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the file"
            raise ConfigError(
                f"{path} is not a readable evidence record ({where}: {first['msg']}); it was damaged or edited"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    return RunRecords(reports_dir, chosen, records, mine)
