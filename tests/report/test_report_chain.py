"""The hash-chained history and the DSSE/in-toto envelope, checked by `restoredrill verify-report` and, for
the envelope, by the README's recipe with openssl/jq/sha256sum only (no restoredrill code)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from restoredrill import history_chain
from restoredrill.evidence import DrillRecord, append_history
from restoredrill.operate.merge import merge
from restoredrill.report.build import build_report
from tests.report.conftest import cli
from tests.report.factory import NOW, healthy, monthly_history, run_id_at, write
from tests.report.test_report_cli import ed25519_pair

README = Path(__file__).resolve().parents[2] / "README.md"
RUN = run_id_at(NOW, "cur001")
BASE = "drill-report-2026-11-01"


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """Three monthly runs and the current one, reported and signed: (report folder, public key)."""
    reports = tmp_path / "reports"
    monthly_history(reports, ["shop"], 3, NOW)
    write(reports, [healthy("shop", RUN, NOW)])
    private, public, _pem = ed25519_pair(tmp_path)
    build_report(reports, run_id=RUN, signing_key=private)
    return reports, public


def _lines(reports: Path) -> list[str]:
    return (reports / "history.jsonl").read_text().splitlines()


def _verify(reports: Path, public: Path) -> tuple[int, str]:
    result = cli("verify-report", str(reports), "--public-key", str(public), cwd=reports.parent)
    assert "Traceback" not in result.output, result.output
    return result.returncode, result.output


def test_a_healthy_chain_and_envelope_verify(signed: tuple[Path, Path]) -> None:
    reports, public = signed
    lines = [json.loads(line) for line in _lines(reports)]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert lines[0]["prev"] == history_chain.GENESIS
    raw = _lines(reports)
    for before, line in zip(raw, lines[1:], strict=False):
        assert line["prev"] == history_chain.line_hash(before.encode())  # the documented canonical bytes
    manifest = json.loads((reports / f"{BASE}.manifest.json").read_text())
    assert manifest["history"] == {
        "file": "history.jsonl",
        "entries": 4,
        "head_sha256": history_chain.line_hash(raw[-1].encode()),
    }
    code, output = _verify(reports, public)
    assert code == 0, output
    assert "1 DSSE envelope(s) valid" in output
    assert "history: 4 hash-chained line(s) intact" in output


@pytest.mark.parametrize(
    ("damage", "finding"),
    [
        (
            "delete",
            r"history entry #2 is missing: 1 line\(s\) were deleted after line 1 \(run 20260803T051700Z-m00003\)",
        ),
        (
            "edit",
            r"history line 3 \(run 20261002T051700Z-m00001\) does not carry the SHA-256 of entry #2: "
            r"line 2 \(run 20260902T051700Z-m00002\) was edited or replaced",
        ),
        (
            "reorder",
            r"history line 3 \(run 20260902T051700Z-m00002\) is entry #2 but comes after entry #3: lines were "
            r"reordered",
        ),
        (
            "cut",
            r"history.jsonl ends at entry #3, but drill-report-2026-11-01.manifest.json recorded #4: "
            r"its last 1 line\(s\) were deleted",
        ),
        (
            "edit-last",
            r"history line 4 \(run 20261101T051700Z-cur001\) \(entry #4\) is not the line "
            r"drill-report-2026-11-01.manifest.json recorded: it was edited",
        ),
    ],
)
def test_a_deleted_edited_or_reordered_history_line_is_named(
    signed: tuple[Path, Path], damage: str, finding: str
) -> None:
    reports, public = signed
    lines = _lines(reports)
    if damage == "delete":
        del lines[1]
    elif damage == "edit":
        lines[1] = lines[1].replace('"verdict":"passed"', '"verdict":"failed"')
    elif damage == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif damage == "cut":
        lines = lines[:-1]
    else:
        lines[-1] = lines[-1].replace('"rto_s":95.0', '"rto_s":9.0')
    (reports / "history.jsonl").write_text("\n".join(lines) + "\n")
    code, output = _verify(reports, public)
    assert code == 1, output
    assert re.search(rf"TAMPERED: {finding}", output), output
    assert output.count("TAMPERED: history") == 1, output  # one defect, named once


def test_legacy_lines_are_reported_and_the_chain_continues_after_them(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    old = healthy("shop", run_id_at(NOW.replace(month=9), "old001"), NOW.replace(month=9))
    legacy = {
        "run_id": old.run_id,
        "database": "shop",
        "layer": "logical",
        "verdict": "passed",
        "finished_at": old.finished_at,
        "rto_s": 90.0,
        "rpo_s": 3600.0,
    }
    (reports / "history.jsonl").write_text(json.dumps(legacy) + "\n" + json.dumps({**legacy, "rto_s": 91.0}) + "\n")
    write(reports, [healthy("shop", RUN, NOW)])
    assert json.loads(_lines(reports)[-1])["seq"] == 3
    build_report(reports, run_id=RUN)
    ok = cli("verify-report", str(reports), cwd=tmp_path)
    assert ok.returncode == 0, ok.output
    assert "history.jsonl has 2 legacy line(s) written before hash chaining" in ok.output
    assert "history: 1 hash-chained line(s) intact (2 legacy line(s) without a hash)" in ok.output
    lines = _lines(reports)
    (reports / "history.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")  # the anchored legacy line
    bad = cli("verify-report", str(reports), cwd=tmp_path)
    assert bad.returncode == 1, bad.output
    assert (
        "history entry #2 is missing: 1 line(s) were deleted after line 1 (run 20260901T051700Z-old001)" in bad.output
    )


def _append_many(args: tuple[str, int]) -> None:
    folder, worker = args
    for index in range(15):
        record = healthy("shop", run_id_at(NOW, f"w{worker}i{index:02d}"), NOW)
        append_history(Path(folder), DrillRecord.model_validate(record.model_dump()))


def test_appends_from_parallel_workers_keep_one_chain(tmp_path: Path) -> None:
    with ProcessPoolExecutor(3) as pool:
        list(pool.map(_append_many, [(str(tmp_path), w) for w in range(3)]))
    check = history_chain.verify(history_chain.read_history(tmp_path))
    assert check.problems == []
    assert check.chained == 45


def test_merge_carries_the_chain_and_chains_the_merged_run(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    monthly_history(earlier, ["shop"], 2, NOW)
    jobs = []
    for name in ("shop", "billing"):
        job = tmp_path / name
        shutil.copytree(earlier, job)  # each job downloaded the previous run's history
        write(job, [healthy(name, run_id_at(NOW, f"job{name[:3]}"), NOW)])
        jobs.append(job)
    out = tmp_path / "merged"
    merged = merge(jobs, out, None, None)
    build_report(out, run_id=merged.run_id)
    carried = _lines(earlier)
    assert _lines(out)[:2] == carried  # verbatim: the previous report's head still matches
    ok = cli("verify-report", str(out), cwd=tmp_path)
    assert ok.returncode == 0, ok.output
    assert "history: 4 hash-chained line(s) intact" in ok.output


def _recipe(marker: str, language: str) -> str:
    text = README.read_text()
    return text.split(f"<!-- {marker} -->\n```{language}\n", 1)[1].split("```", 1)[0]


def _run_recipe(reports: Path, public: Path, python: bool = False) -> subprocess.CompletedProcess[str]:
    """A README recipe as an auditor runs it, in the report folder, in a process of its own."""
    shutil.copyfile(public, reports / "signing-key.pub.pem")
    command = (
        [sys.executable, "-c", _recipe("dsse-recipe-python", "python")]
        if python
        else ["bash", "-euo", "pipefail", "-c", _recipe("dsse-recipe", "sh")]
    )
    try:
        return subprocess.run(command, cwd=reports, capture_output=True, text=True, check=False)
    finally:
        (reports / "signing-key.pub.pem").unlink()


def test_the_readme_recipe_verifies_the_envelope_with_standard_tools(signed: tuple[Path, Path]) -> None:
    reports, public = signed
    good = _run_recipe(reports, public)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Signature Verified Successfully" in good.stdout
    assert f"{BASE}.manifest.json: OK" in good.stdout
    assert '"run_id": "20261101T051700Z-cur001"' in good.stdout
    with_sslib = _run_recipe(reports, public, python=True)
    assert with_sslib.returncode == 0, with_sslib.stdout + with_sslib.stderr
    assert "verified: 20261101T051700Z-cur001" in with_sslib.stdout

    record = next((reports / "evidence").glob(f"{RUN}--*.json"))
    record.write_text(record.read_text().replace('"passed"', '"failed"', 1))
    changed = _run_recipe(reports, public)
    assert changed.returncode != 0
    assert f"evidence/{record.name}: FAILED" in changed.stdout
    changed_sslib = _run_recipe(reports, public, python=True)
    assert changed_sslib.returncode != 0
    assert f"evidence/{record.name} does not match the signed statement" in changed_sslib.stderr

    envelope = reports / f"{BASE}.dsse.json"
    data = json.loads(envelope.read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    statement["predicate"]["run_id"] = "someone-else"
    data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    envelope.write_text(json.dumps(data))
    forged = _run_recipe(reports, public)
    assert forged.returncode != 0
    assert "Signature Verified Successfully" not in forged.stdout
    assert _run_recipe(reports, public, python=True).returncode != 0
    code, output = _verify(reports, public)
    assert code == 1
    assert f"the signature of {BASE}.dsse.json does not verify: the statement was altered" in output
