"""The verdict of a whole run: the evidence of what ran, held against what the configuration plans.

A run whose selection (`-k`, node ids) left drills or checks out is PARTIAL, never a whole pass
(DESIGN rule 8): every drill that ran may have passed, but nothing is proven for what did not run.
Its own exit code (4) lets a CI job tell "all passed" from "what ran passed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from restoredrill.errors import BackupDefect
from restoredrill.evidence import DrillRecord, Outcome, Verdict

if TYPE_CHECKING:
    from restoredrill.config import DrillConfig

RunVerdict = Verdict  # a run reads like a drill: passed, partial, failed or could not verify
LAYERS = ("logical", "pgbackrest", "rds")
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_COULD_NOT_VERIFY, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    "passed": EXIT_PASSED,
    "failed": EXIT_FAILED,
    "could_not_verify": EXIT_COULD_NOT_VERIFY,
    "partial": EXIT_PARTIAL,
}
EXIT_CODES_HELP = """exit codes:
  0    every configured drill ran, with every check, and passed
  1    a drill failed (a bad backup, a breached objective, a failed check)
  2    bad usage or configuration
  3    a drill could not verify and none failed (or nothing ran)
  4    PARTIAL: everything that ran passed, but the selection left drills or checks out
  130  interrupted"""


# Which failure the headline (record.reason) names when several checks fail: data or structure lost first (a
# restore that failed lost whatever it could not restore), then other findings on the restored data, then a wrong
# or corrupt archive, then missed objectives; ties go by check order. The first failing check in check order hid
# the real finding behind a symptom. Every failing check stays in the record.
LOST, FINDING, ARCHIVE, OBJECTIVE = 0, 1, 2, 3
SEVERITY: dict[str, int] = {
    **dict.fromkeys(("restore", "toc_tables", "manifest_row_counts", "manifest_structure", "manifest_content"), LOST),
    **dict.fromkeys(("min_rows", "matviews_populated", "drift"), LOST),
    **dict.fromkeys(("restore_errors", "amcheck"), ARCHIVE),
    **dict.fromkeys(("rpo_newest_age", "rpo_largest_gap", "rto"), OBJECTIVE),
}


def severity(check_name: str) -> int:
    """LOST ... OBJECTIVE; checks not listed (sequences, sql:..., a team's own) are findings. A policy check
    (policy_...) ranks with the objectives: a missed rule of the strategy, not data lost."""
    if check_name.startswith("policy_"):
        return OBJECTIVE
    return SEVERITY.get(check_name.split(":", 1)[0], FINDING)


@dataclass(frozen=True)
class DrillVerdict:
    verdict: Verdict
    reason: str | None


def drill_verdict(
    record: DrillRecord, *, failure: Exception | None, restored: bool, database_checks: set[str], planned: int
) -> DrillVerdict:
    """The verdict of one drill from its checks, the one rule the evidence, the console and every report read:
    - a defect of the backup, or any failed check: `failed` (the most significant failure is the reason);
    - otherwise anything that could not run: `could_not_verify`;
    - `partial` when all that ran passed but checks of the drill were left out (by the selection);
    - `passed` only when the restore worked, at least one check of the restored database passed, and none
      was left out. Checks that did not apply or never ran prove nothing either way.
    """
    failed = sorted((c for c in record.checks if c.outcome == Outcome.FAILED), key=lambda c: severity(c.name))
    errors = [c for c in record.checks if c.outcome == Outcome.ERROR]
    # A defect found before any restore (a wrong or damaged archive): no data check ran to outrank it.
    if isinstance(failure, BackupDefect):
        return DrillVerdict("failed", str(failure))
    if failed:
        return DrillVerdict("failed", f"{failed[0].name}: {failed[0].detail}")
    if failure is not None:
        return DrillVerdict("could_not_verify", str(failure))
    if errors:
        return DrillVerdict("could_not_verify", f"{errors[0].name}: {errors[0].detail}")
    if not restored:
        return DrillVerdict("could_not_verify", "the restore did not complete")
    if not any(c.name in database_checks and c.outcome == Outcome.PASSED for c in record.checks):
        return DrillVerdict("could_not_verify", "no check of the restored database ran")
    if record.left_out:  # what ran passed, but a selection is never a whole pass (DESIGN rule 8)
        return DrillVerdict(
            "partial",
            f"partial drill: {len(record.left_out)} of {planned} checks did not run: " + ", ".join(record.left_out),
        )
    return DrillVerdict("passed", None)


@dataclass(frozen=True, order=True)
class PlannedDrill:
    """One drill the configuration asks for: a database, a layer and (pgBackRest) a recovery target."""

    database: str
    layer: str
    variant: str | None = None

    @property
    def label(self) -> str:
        return f"{self.database} / {self.layer}" + (f" ({self.variant})" if self.variant else "")

    def as_dict(self) -> dict[str, str | None]:
        return {"database": self.database, "layer": self.layer, "variant": self.variant}


def planned_drills(config: DrillConfig) -> list[PlannedDrill]:
    planned = []
    for name, database in config.databases.items():
        for layer in LAYERS:
            source = getattr(database, layer, None)
            if source is None:
                continue
            variants = list(getattr(source, "recovery_targets", None) or [None])  # pgBackRest: one drill per target
            planned += [PlannedDrill(name, layer, variant) for variant in variants]
    return planned


def drill_of(record: DrillRecord) -> PlannedDrill:
    return PlannedDrill(record.database, record.layer, record.variant)


@dataclass(frozen=True)
class Judgement:
    verdict: RunVerdict
    records: list[DrillRecord]
    planned: list[PlannedDrill] | None  # None: the plan is unknown (a report rendered without its configuration)
    not_run: list[PlannedDrill]  # planned, but no drill left a record
    partial: list[DrillRecord]  # drills whose selection left checks out

    @property
    def exit_code(self) -> int:
        # A drill that refused to start (no room for the restore) is a setup problem, like bad usage.
        if self.verdict != "failed" and any(r.refused for r in self.records):
            return EXIT_USAGE
        return EXIT_CODES[self.verdict]

    def left_out(self) -> list[str]:
        """What the selection left out, one phrase each, for the headline, the console and the report."""
        phrases = [f"{drill.label} (not run)" for drill in self.not_run]
        for record in self.partial:
            names = record.left_out
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            phrases.append(f"{drill_of(record).label}: {len(names)} check(s) not run ({shown})")
        return phrases


def judge(records: list[DrillRecord], planned: list[PlannedDrill] | None) -> Judgement:
    """failed > could not verify > partial > passed; nothing at all is never a pass."""
    ran = {drill_of(r) for r in records}
    not_run = [drill for drill in planned or [] if drill not in ran]
    partial = [r for r in records if r.left_out]
    verdicts = {r.verdict for r in records}
    verdict: RunVerdict
    if "failed" in verdicts:
        verdict = "failed"
    elif "could_not_verify" in verdicts or not records:
        verdict = "could_not_verify"
    elif not_run or partial or "partial" in verdicts:
        verdict = "partial"
    else:
        verdict = "passed"
    return Judgement(verdict, records, planned, not_run, partial)


def evidence_exit_code(pytest_status: int, judged: Judgement) -> int | None:
    """pytest's own status and the evidence as one exit code; None when pytest's status is not about
    the drills' outcome (interrupted, bad usage, nothing collected): the caller says what happened."""
    ok, tests_failed, internal_error = 0, 1, 3  # pytest.ExitCode, without importing pytest here
    if pytest_status not in (ok, tests_failed, internal_error):
        return None
    code = judged.exit_code
    if pytest_status == tests_failed and code in (EXIT_PASSED, EXIT_PARTIAL):
        return EXIT_FAILED  # an item failed that no record explains: never green
    if pytest_status == internal_error and code in (EXIT_PASSED, EXIT_PARTIAL):
        return EXIT_COULD_NOT_VERIFY
    return code
