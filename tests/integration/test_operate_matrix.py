"""Fleet scale on CI's own matrix: `matrix` prints the cells, each cell runs as its own `restoredrill run -k`
(separate runs, separate report folders, as separate CI jobs), and `report --merge` builds ONE report,
manifest, history and summary whose content is that of a single run of the same drills."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import DrillScenario, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration
VOLATILE = {"run_id", "started_at", "finished_at", "stages", "rto_s", "rpo_s", "rpo_detail", "host", "target_info"}


def write_config(folder: Path, drill: DrillScenario) -> Path:
    """Two databases (one name extends the other) drilled from the same dumps; reports beside the config."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drills.toml"
    path.write_text(
        'reports_dir = "reports"\n'
        '[objectives.logical]\nrpo = "26h"\nrto = "15m"\n'
        f'[target]\nworkdir = "{drill.workdir}"\n'
        f'[databases.shop.logical]\nsource = "file://{drill.prefix}/"\n'
        f'[databases.shop-eu.logical]\nsource = "file://{drill.prefix}/"\ndump_name = "shop"\n'
    )
    return path


def records(reports: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((reports / "evidence").glob("*.json"))]


def drill_cases(junit: Path) -> list[tuple[str, bool]]:
    """The drill items of a JUnit file and whether each failed (a layer-absent skip names no database)."""
    root = ElementTree.parse(junit).getroot()  # noqa: S314 - our own pytest wrote it
    return sorted(
        (case.get("name", ""), case.find("failure") is not None or case.find("error") is not None)
        for case in root.iter("testcase")
        if "[shop" in case.get("name", "")
    )


def content(record: dict) -> dict:
    """What a drill established, without what differs between any two runs (times, durations, host)."""
    kept = {k: v for k, v in record.items() if k not in VOLATILE}
    kept["checks"] = sorted((c["name"], c["outcome"]) for c in record["checks"])
    kept["largest_tables"] = [t["table"] for t in record["largest_tables"]] if record["largest_tables"] else []
    return kept


def test_matrix_cells_run_as_separate_jobs_merge_into_the_report_of_one_run(
    drill: DrillScenario, tmp_path: Path
) -> None:
    single = write_config(drill.root / "single", drill)
    plan = run_cli("matrix", "--config", str(single))
    assert plan.returncode == 0, plan.output
    assert plan.output.strip().count("\n") == 0, "one line, for $GITHUB_OUTPUT"
    cells = json.loads(plan.output)["include"]
    assert [(c["database"], c["layer"]) for c in cells] == [("shop", "logical"), ("shop-eu", "logical")]
    assert cells[0]["select"] == "[shop-logical"
    assert cells[1]["select"] == "[shop-eu-logical"

    jobs = []
    for cell in cells:  # each CI job: its own checkout, its own run, its own report folder
        config = write_config(drill.root / f"job-{cell['name']}", drill)
        result = run_cli("run", "--config", str(config), "-k", cell["select"], workdir=drill.workdir)
        assert result.returncode == 4, result.output  # one cell of a larger plan is PARTIAL; the merge is whole
        (record,) = records(config.parent / "reports")
        assert record["database"] == cell["database"]
        jobs.append(config.parent / "reports")
    whole = run_cli("run", "--config", str(single), workdir=drill.workdir)
    assert whole.returncode == 0, whole.output

    summary = tmp_path / "summary.md"
    merged_dir = drill.root / "merged"
    merged = run_cli(
        "report",
        "--config",
        str(single),
        "--reports",
        str(merged_dir),
        "--merge",
        *map(str, jobs),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert merged.returncode == 0, merged.output
    assert "merged 2 drill record(s) of 2 job(s)" in merged.output

    got, expected = records(merged_dir), records(single.parent / "reports")
    assert len({r["run_id"] for r in got}) == 1, "one run"
    assert sorted(map(json.dumps, map(content, got))) == sorted(map(json.dumps, map(content, expected)))
    assert len(list(merged_dir.glob("drill-report-*.html"))) == 1
    assert len(list(merged_dir.glob("drill-report-*.manifest.json"))) == 1
    history = [json.loads(line) for line in (merged_dir / "history.jsonl").read_text().splitlines()]
    assert sorted(h["database"] for h in history) == ["shop", "shop-eu"]
    assert {h["run_id"] for h in history} == {got[0]["run_id"]}
    junit = drill_cases(merged_dir / "junit" / f"{got[0]['run_id']}.xml")
    assert junit == drill_cases(next((single.parent / "reports" / "junit").glob("*.xml")))
    assert len(junit) > 2
    report = next(merged_dir.glob("drill-report-*.html")).read_text()
    assert "shop-eu" in report
    table = [line for line in summary.read_text().splitlines() if line.startswith("| shop")]
    assert len(table) == 2, summary.read_text()
    verify = run_cli("verify-report", str(merged_dir))
    assert verify.returncode == 0, verify.output

    died = drill.root / "job-that-died"  # its artifact holds no evidence: the others still make a report
    died.mkdir()
    partial = run_cli("report", "--reports", str(drill.root / "partial"), "--merge", str(jobs[0]), str(died))
    assert partial.returncode == 3, partial.output
    assert f"warning: {died} holds no evidence: that job's drills did not run" in partial.output
    assert len(records(drill.root / "partial")) == 1

    again = run_cli("report", "--reports", str(drill.root / "twice"), "--merge", str(jobs[0]), str(jobs[0]))
    assert again.returncode == 2, again.output
    assert "shop/logical was drilled by two jobs" in again.output
    assert "Traceback" not in again.output
    shutil.rmtree(drill.root / "twice", ignore_errors=True)


def test_merge_and_matrix_bad_input_is_one_sentence_and_exit_2(drill: DrillScenario) -> None:
    nothing = run_cli("report", "--reports", str(drill.root / "out"), "--merge", str(drill.root / "no-such-job"))
    assert nothing.returncode == 2, nothing.output
    assert "does not exist" in nothing.output
    assert "Traceback" not in nothing.output
    path = drill.root / "odd.toml"
    path.write_text(
        '[objectives.logical]\nrpo = "1h"\nrto = "1h"\n'
        f'[databases."shop east".logical]\nsource = "file://{drill.prefix}/"\n'
    )
    odd = run_cli("matrix", "--config", str(path))
    assert odd.returncode == 2, odd.output
    assert "cannot be selected with pytest -k" in odd.output


def test_the_demo_builds_without_drilling_for_the_scheduled_workflow() -> None:
    """With no drills.toml committed, every workflow job builds the demo and drills its own cell."""
    folder = traversable_tempdir("rd-demo-build-")
    try:
        built = run_cli("demo", "--build-only", "--dir", str(folder), "--reports", str(folder / "reports"), timeout=300)
        assert built.returncode == 0, built.output
        assert not (folder / "reports" / "evidence").exists(), "--build-only drills nothing"
        plan = run_cli("matrix", "--config", str(folder / "drills.toml"))
        assert plan.returncode == 0, plan.output
        assert [c["name"] for c in json.loads(plan.output)["include"]] == ["shop-logical", "shop-pgbackrest"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
