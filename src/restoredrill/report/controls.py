"""Which evidence in the report supports which audit control. Wording follows the published criteria;
the status says what this run's evidence shows, never more.

Each control is judged, layer by layer, from the evidence it covers, never copied from the run's verdict:
a breached RTO is an exception of the continuity control, not of the backup-testing one; a failed data check
is the other way round; a layer the run did not drill is NOT TESTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from restoredrill.durations import format_duration
from restoredrill.evidence import CheckRecord, DrillRecord
from restoredrill.report.history import History

# recovery: the whole drill (restore, every check, the objectives); backup: the backup copy restored and its
# data checked (not the timings); objectives: RTO and RPO measured against the objectives.
Covers = Literal["recovery", "backup", "objectives"]
STATE_LABEL = {
    "passed": "SUPPORTED",
    "failed": "EXCEPTION",
    "could_not_verify": "NOT EVIDENCED",
    "partial": "PARTLY TESTED",
    "not_tested": "NOT TESTED",
}
TESTED = ("passed", "partial", "failed")  # a drill with one of these verdicts tested its backup


@dataclass(frozen=True)
class Control:
    framework: str
    ref: str
    requirement: str
    evidence: str
    sections: tuple[tuple[str, str], ...]
    regular: bool = False  # the control asks for testing at an interval: show in how many months it was done
    covers: Covers = "recovery"


CONTROLS = (
    Control(
        "SOC 2 (Trust Services Criteria)",
        "A1.3",
        "Recovery plan procedures supporting system recovery are tested to help meet the entity's "
        "availability commitments and system requirements.",
        "The newest backup of each database and layer was restored into a throwaway server and checked; "
        "the time to recover and the data that would be lost were measured against objectives written "
        "down in advance.",
        (("matrix", "Matrix"), ("objectives", "Objectives"), ("drills", "Drill details")),
    ),
    Control(
        "ISO/IEC 27001:2022",
        "A.8.13",
        "Backup copies of information, software and systems shall be maintained and regularly tested in "
        "accordance with the agreed topic-specific policy on backup.",
        "Which backup copy was tested (id, time, size, location, SHA-256), that it restored, every check "
        "run on the restored data, and how regularly the tests ran.",
        (("drills", "Drill details"), ("trends", "Trends"), ("coverage", "Coverage")),
        regular=True,
        covers="backup",
    ),
    Control(
        "ISO/IEC 27001:2022",
        "A.5.30",
        "ICT readiness shall be planned, implemented, maintained and tested based on business continuity "
        "objectives and ICT continuity requirements.",
        "Measured RTO and RPO against the continuity objectives, with their trend over earlier runs.",
        (("objectives", "Objectives"), ("trends", "Trends")),
        covers="objectives",
    ),
    Control(
        "PCI DSS v4.0",
        "12.10.1 / 12.10.2",
        "The incident response plan includes business recovery and continuity procedures and data backup "
        "processes (12.10.1), and is tested at least once every 12 months, including all of those "
        "elements (12.10.2).",
        "A dated test of the data backup and recovery procedure: what was restored, by whom, where and "
        "with which tools, in tamper-evident records.",
        (("environment", "Environment"), ("integrity", "Integrity"), ("trends", "Trends")),
        regular=True,
    ),
)

SCOPE_NOTE = (
    "This report evidences the testing part of each control. The backup policy, the approval of the "
    "objectives and the follow-up of exceptions are evidenced elsewhere."
)


@dataclass(frozen=True)
class LayerStatus:
    layer: str
    label: str
    state: str
    text: str

    @property
    def word(self) -> str:
        return STATE_LABEL[self.state]


def _is_timing(check: CheckRecord) -> bool:
    return check.name == "rto" or check.name.startswith("rpo")


def _breaches(record: DrillRecord) -> list[str]:
    found = []
    objectives = record.objectives
    if record.rto_s is not None and record.rto_s > objectives.rto_s:
        found.append(f"RTO {format_duration(record.rto_s)} over {format_duration(objectives.rto_s)}")
    if record.rpo_s is not None and record.rpo_s > objectives.rpo_s:
        found.append(f"RPO {format_duration(record.rpo_s)} over {format_duration(objectives.rpo_s)}")
    found += [f"{c.name}: {c.detail}" for c in record.checks if _is_timing(c) and c.outcome == "failed"]
    return list(dict.fromkeys(found))


def _objectives_state(record: DrillRecord) -> str:
    if _breaches(record):
        return "failed"
    return "could_not_verify" if record.rto_s is None or record.rpo_s is None else "passed"


def _checks_state(record: DrillRecord, covered: list[CheckRecord], left_out: list[str]) -> str:
    if any(c.outcome == "failed" for c in covered):
        return "failed"
    unverified = any(c.outcome in ("error", "not_run") for c in covered)
    if record.verdict == "could_not_verify" or unverified or not covered:
        return "could_not_verify"
    return "partial" if left_out else "passed"


def record_state(control: Control, record: DrillRecord) -> str:
    """What one drill's evidence says for one control."""
    if control.covers == "objectives":
        return _objectives_state(record)
    if control.covers == "backup":
        # A check that did not apply proves nothing: it covers nothing.
        covered = [c for c in record.checks if not _is_timing(c) and c.outcome != "not_applicable"]
        left_out = [n for n in record.left_out if n != "rto" and not n.startswith("rpo")]
        return _checks_state(record, covered, left_out)
    if record.verdict == "failed":
        return "failed"
    return _checks_state(record, record.checks, record.left_out)


def worst(states: list[str]) -> str:
    for state in ("failed", "could_not_verify", "partial", "not_tested"):
        if state in states:
            return state
    return "passed"


def months_tested(history: History, layer: str, run_date: datetime) -> int:
    """Distinct calendar months in the 12 months to the run with a drill of this layer that tested a backup:
    five runs on one day are one month of testing, not five."""
    since = run_date - timedelta(days=365)
    return len(
        {
            point.month
            for (_db, key_layer, _variant), points in history.series.items()
            if key_layer == layer
            for point in points
            if since <= point.at <= run_date and point.verdict in TESTED
        }
    )


def layer_status(
    control: Control, layer: str, label: str, records: list[DrillRecord], missing: int, history: History, when: datetime
) -> LayerStatus:
    if not records:
        return LayerStatus(layer, label, "not_tested", "no drill of this layer ran in this run")
    states = [record_state(control, r) for r in records]
    state = worst(states)
    if state == "passed" and missing:
        state = "partial"
    counted = ", ".join(f"{states.count(s)} {STATE_LABEL[s].lower()}" for s in STATE_LABEL if states.count(s))
    text = f"{len(records)} drill(s): {counted}"
    if control.covers == "objectives":
        breaches = [f"{r.database}: {b}" for r in records for b in _breaches(r)]
        text = "objective breached: " + "; ".join(breaches) if breaches else f"{text}, every objective met"
    if missing:
        text += f"; {missing} planned drill(s) of this layer did not run"
    if control.regular:
        text += f"; tested in {months_tested(history, layer, when)} month(s) of the 12 to {when:%Y-%m-%d}"
    return LayerStatus(layer, label, state, text)


def control_state(layer_states: list[str]) -> str:
    """One control over its layers: an exception anywhere is one; supported only when every layer is."""
    if not layer_states or all(state == "not_tested" for state in layer_states):
        return "not_tested"
    if "failed" in layer_states:
        return "failed"
    if all(state == "passed" for state in layer_states):
        return "passed"
    if "could_not_verify" in layer_states:
        return "could_not_verify"
    return "partial"  # some layers support it, others were not (fully) tested
