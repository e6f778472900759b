"""The drill workflow is the matrix plan -> one job per cell -> one merged report, and the committed example
configuration is valid and yields the matrix the workflow expects."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from restoredrill.config import load_config
from restoredrill.operate import matrix

PROJECT = Path(__file__).resolve().parents[2]
WORKFLOW = PROJECT / ".github" / "workflows" / "restore-drills.yml"


def steps_running(job: dict, text: str) -> list[dict]:
    return [step for step in job["steps"] if text in step.get("run", "")]


def test_workflow_plans_cells_drills_each_and_merges_one_report() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    jobs = flow["jobs"]
    assert list(jobs) == ["plan", "drill", "report"]
    assert steps_running(jobs["plan"], "restoredrill matrix")
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.cells.outputs.matrix }}"

    drill = jobs["drill"]
    assert drill["needs"] == "plan"
    strategy = drill["strategy"]
    assert strategy["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert "inputs.max_parallel" in strategy["max-parallel"]
    assert strategy["fail-fast"] is False
    (run,) = steps_running(drill, "restoredrill run")
    assert run["env"]["SELECT"] == "${{ matrix.select }}"
    assert '-k "$SELECT"' in run["run"]
    (history,) = steps_running(drill, "history.jsonl")  # the drift baseline: the previous run's history
    assert drill["steps"].index(history) < drill["steps"].index(run)
    uploads = [s for s in drill["steps"] if "upload-artifact" in s.get("uses", "")]
    assert uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["name"] == "restore-drill-cell-${{ matrix.name }}"

    report = jobs["report"]
    assert report["needs"] == ["plan", "drill"]
    assert "always()" in report["if"]
    download = next(s for s in report["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"]["pattern"] == "restore-drill-cell-*"
    (merge,) = steps_running(report, "--merge")
    assert "--merge cells/*" in merge["run"]
    assert flow[True]["workflow_dispatch"]["inputs"]["max_parallel"]["default"] == "4"  # YAML reads `on` as True
    assert "schedule" in flow[True]


def test_example_configuration_is_valid_and_gives_a_matrix(tmp_path: Path) -> None:
    config = load_config(PROJECT / "drills.example.toml")
    assert config.notify_env == "RESTOREDRILL_WEBHOOK"
    cells = json.loads(matrix.render(config))["include"]
    assert [(c["database"], c["layer"]) for c in cells] == [
        ("shop", "logical"),
        ("shop", "pgbackrest"),
        ("billing", "rds"),
    ]
    assert {c["name"] for c in cells} == {"shop-logical", "shop-pgbackrest", "billing-rds"}
