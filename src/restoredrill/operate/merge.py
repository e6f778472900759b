"""`restoredrill report --merge DIR...`: the evidence of several CI jobs (one matrix cell each) as ONE run.

Each job's report folder holds the records of its own run. The merge gives them one run id (the earliest
job's, or `--run`), so the report, manifest, history and job summary are those a single run of the same
drills would have produced: the records are the same data, only the run id is shared. Everything is then
rendered by the report builder, not by a second copy of it.

Refused with one sentence: a folder without evidence, the output folder among the inputs, and two jobs
that drilled the same database, layer and variant (overlapping selectors would otherwise hide one result).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from restoredrill import history_chain
from restoredrill.errors import ConfigError
from restoredrill.evidence import DrillRecord, append_history
from restoredrill.history_chain import HISTORY_FILE
from restoredrill.report.context import RunContext, context_path, write_run_context
from restoredrill.report.records import RunRecords, load_run


@dataclass(frozen=True)
class Merged:
    run_id: str
    records: list[DrillRecord]
    jobs: list[str]
    empty: list[str]  # job folders that held no evidence: their drills did not run


def _inputs(folders: list[Path], out: Path) -> tuple[list[RunRecords], list[str]]:
    """The newest run of each job's folder. A job that left no evidence (it died before its drills) is set
    aside, not fatal: one broken job must not cost the report of all the others; the caller says so."""
    runs, empty = [], []
    for folder in folders:
        if folder.resolve() == out.resolve():
            raise ConfigError(f"the merged report folder {out} cannot also be one of the inputs")
        if not folder.is_dir():
            raise ConfigError(f"the job folder {folder} does not exist")
        if not any((folder / "evidence").glob("*--*.json")):
            empty.append(str(folder))
            continue
        runs.append(load_run(folder.resolve()))
    if not runs:
        raise ConfigError(f"none of the {len(folders)} job folder(s) holds evidence records: nothing to merge")
    return runs, empty


def _key(record: DrillRecord) -> tuple[str, str, str | None]:
    return record.database, record.layer, record.variant


def _check_overlap(runs: list[RunRecords]) -> None:
    seen: dict[tuple[str, str, str | None], Path] = {}
    for run in runs:
        for record in run.records:
            key = _key(record)
            if key in seen:
                drill = f"{key[0]}/{key[1]}" + (f" ({key[2]})" if key[2] else "")
                raise ConfigError(
                    f"{drill} was drilled by two jobs ({seen[key]} and {run.reports_dir}): their selectors "
                    "overlap, so their evidence cannot be one run"
                )
            seen[key] = run.reports_dir


def _carried_history(runs: list[RunRecords], out: Path) -> list[bytes]:
    """History lines of EARLIER runs the jobs carried (e.g. downloaded from the previous workflow run), verbatim:
    their hash chain (and the head the previous report recorded) stays intact. Jobs carry the same history;
    the longest is taken, and lines already in `out` are not repeated."""
    jobs = {run.run_id for run in runs}
    carried: list[bytes] = []
    for run in runs:
        lines = [e.raw for e in history_chain.parse(run.reports_dir / HISTORY_FILE).entries if e.run not in jobs]
        carried = lines if len(lines) > len(carried) else carried
    existing = [e.raw for e in history_chain.parse(out / HISTORY_FILE).entries]
    if carried[: len(existing)] == existing:
        return carried[len(existing) :]
    seen = set(existing)
    return [line for line in carried if line not in seen]  # a diverged history: verify-report will name it


def _context(runs: list[RunRecords], out: Path, run_id: str, config_file: Path | None) -> None:
    """The earliest job's run context (its commit, its CI run), under the merged run id."""
    for run in runs:
        path = context_path(run.reports_dir, run.run_id)
        if path.is_file():
            try:
                context = RunContext.model_validate_json(path.read_bytes())
            except ValueError:
                continue
            target = context_path(out, run_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(context.model_copy(update={"run_id": run_id}).model_dump_json(indent=2) + "\n")
            return
    write_run_context(out, run_id, config_file)


def _junit(runs: list[RunRecords], out: Path, run_id: str) -> None:
    """One JUnit file of every job's test cases, as one pytest session would have written it."""
    cases: list[ET.Element] = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for run in runs:
        path = run.reports_dir / "junit" / f"{run.run_id}.xml"
        if not path.is_file():
            continue
        root = ET.parse(path).getroot()  # noqa: S314 - written by our own pytest run
        for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
            cases += suite.findall("testcase")
            for name in totals:
                totals[name] += int(suite.get(name, "0"))
            seconds += float(suite.get("time", "0"))
    if not cases:
        return
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites, "testsuite", {"name": "pytest", **{k: str(v) for k, v in totals.items()}, "time": f"{seconds:.3f}"}
    )
    suite.extend(cases)
    target = out / "junit" / f"{run_id}.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(target, encoding="utf-8", xml_declaration=True)


def _allure_results(runs: list[RunRecords], out: Path) -> None:
    target = out / "allure-results"
    for run in runs:
        source = run.reports_dir / "allure-results"
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for item in source.iterdir():
                if item.is_file() and not (target / item.name).exists():
                    shutil.copy2(item, target / item.name)


def merge(folders: list[Path], out: Path, run_id: str | None, config_file: Path | None) -> Merged:
    """Write the jobs' evidence into `out` as one run; the caller renders the report from it."""
    if not folders:
        raise ConfigError("--merge needs at least one report folder")
    runs, empty = _inputs(folders, out)
    _check_overlap(runs)
    merged_id = run_id or min(run.run_id for run in runs)
    out.mkdir(parents=True, exist_ok=True)
    carried = _carried_history(runs, out)
    if carried:
        with (out / HISTORY_FILE).open("ab") as history:
            history.write(b"".join(line + b"\n" for line in carried))
    records = []
    evidence = out / "evidence"
    evidence.mkdir(parents=True, exist_ok=True)
    for run in runs:
        for record in run.records:
            joined = record.model_copy(update={"run_id": merged_id})
            (evidence / joined.file_name()).write_text(joined.to_json() + "\n", encoding="utf-8")
            append_history(out, joined)  # one line per drill, exactly as the single run writes it
            records.append(joined)
    _context(runs, out, merged_id, config_file)
    _junit(runs, out, merged_id)
    _allure_results(runs, out)
    return Merged(merged_id, records, [run.run_id for run in runs], empty)
