"""What every drill shares: one restore, checks recorded one by one, cleanup, and the verdict.

A layer's drill subclasses `LayerDrill` and provides `_prepare` (discover, fetch, restore: failures are
raised as BackupDefect or CouldNotVerify and kept), `timing_checks`, `database_checks`, `_timing`,
`restore_detail` and `_cleanup`. The verdict rules live here, once:
- a defect of the backup, or any failed check: `failed`;
- otherwise anything that could not run: `could_not_verify`;
- `partial` when all that ran passed but checks of the drill were left out (by the selection);
- `passed` only when the restore worked, at least one check of the restored database passed, and none was left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from restoredrill import checks as checks_mod
from restoredrill.checks import NotApplicable, Restored
from restoredrill.config import DrillConfig, Layer
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify, RestoreDrillError
from restoredrill.evidence import CheckRecord, DrillRecord, Objectives, base_tool_versions, iso, utcnow

Log = Callable[[str], None]

# Which failure the headline (record.reason) names when several checks fail: data or structure lost first (a
# restore that failed lost whatever it could not restore), then other findings on the restored data, then a wrong
# or corrupt archive, then missed objectives; ties go by check order. The first failing check in check order hid
# the real finding behind a symptom. Every failing check stays in the record.
LOST, FINDING, ARCHIVE, OBJECTIVE = 0, 1, 2, 3
SEVERITY: dict[str, int] = {
    **dict.fromkeys(("restore", "toc_tables", "manifest_row_counts", "manifest_structure", "manifest_content"), LOST),
    **dict.fromkeys(("min_rows", "matviews_populated"), LOST),
    **dict.fromkeys(("restore_errors", "amcheck"), ARCHIVE),
    **dict.fromkeys(("rpo_newest_age", "rpo_largest_gap", "rto"), OBJECTIVE),
}


def severity(check_name: str) -> int:
    """LOST ... OBJECTIVE; checks not listed (sequences, sql:..., a team's own) are findings."""
    return SEVERITY.get(check_name.split(":", 1)[0], FINDING)


CheckFunction = Callable[[Restored], CheckRecord]


class LayerDrill:
    layer: Layer

    def __init__(self, config: DrillConfig, database: str, run_id: str, log: Log = lambda _m: None) -> None:
        self.config = config
        self.database = database
        self.db_config = config.databases[database]
        self.objective = config.objective(database, self.layer)
        self.log = log
        self.record = DrillRecord(
            run_id=run_id,
            database=database,
            layer=self.layer,
            target="local",
            objectives=Objectives(rto_s=self.objective.rto, rpo_s=self.objective.rpo),
            tool_versions=base_tool_versions(),
        )
        self.failure: RestoreDrillError | None = None
        self.restored: Restored | None = None

    # ----- stage 1: everything up to a usable restored database -------------------------------------
    def prepare(self) -> None:
        """Discover, fetch and restore. Failures are kept, not raised: the check items report them."""
        try:
            self._prepare()
        except RestoreDrillError as exc:
            self.failure = exc
            self.record.refused = isinstance(exc, ConfigError)  # the setup, not the backup: exit 2 like the CLI
            self.log(f"{self.database}/{self.layer}: {exc}")
        except KeyboardInterrupt:
            self.failure = CouldNotVerify("the drill was interrupted")
            raise

    def _prepare(self) -> None:
        raise NotImplementedError

    # ----- stage 2: checks, one test item each ---------------------------------------------------------
    timing_checks: tuple[str, ...] = ()

    def database_checks(self) -> dict[str, CheckFunction]:
        raise NotImplementedError

    def check_names(self) -> list[str]:
        return [*self.timing_checks, *self.database_checks()]

    def restore_detail(self) -> str:
        raise NotImplementedError

    def restore_outcome(self) -> CheckRecord:
        """The restore itself as a check: passed once a usable database exists."""
        if self.restored is not None:
            record = CheckRecord(name="restore", outcome="passed", detail=self.restore_detail())
        elif isinstance(self.failure, BackupDefect):
            record = CheckRecord(name="restore", outcome="failed", detail=str(self.failure))
        else:
            reason = str(self.failure) if self.failure else "the restore did not complete"
            record = CheckRecord(name="restore", outcome="error", detail=f"could not verify: {reason}")
        self.record.add_check(record)
        return record

    def _not_run(self, name: str) -> CheckRecord:
        reason = str(self.failure) if self.failure else "the restore did not complete"
        return CheckRecord(name=name, outcome="error", detail=f"not run: {reason}")

    def check(self, name: str) -> CheckRecord:
        """Run one check and record it. NotApplicable propagates (the drill notes it; pytest skips)."""
        if name in self.timing_checks:
            started = time.monotonic()
            record = self._timing(name)
            record.duration_s = round(time.monotonic() - started, 3)
        elif self.restored is None:
            record = self._not_run(name)
        else:
            try:
                record = checks_mod.run_check(name, self.database_checks()[name], self.restored)
            except NotApplicable as exc:
                self.record.notes.append(f"{name} not applicable: {exc}")
                raise
        self.record.add_check(record)
        return record

    def _timing(self, name: str) -> CheckRecord:
        raise NotImplementedError

    def rto_check(self, what: str) -> CheckRecord:
        if self.record.rto_s is None:
            return self._not_run("rto")
        rto, allowed = self.record.rto_s, self.objective.rto
        return CheckRecord(
            name="rto",
            outcome="passed" if rto <= allowed else "failed",
            detail=f"{what} took {format_duration(rto)} (RTO {format_duration(allowed)})",
        )

    # ----- stage 3: cleanup and the verdict --------------------------------------------------------------
    def _cleanup(self) -> None:
        raise NotImplementedError

    def finish(self, reports_dir: Path | None = None) -> DrillRecord:
        started = time.monotonic()
        self._cleanup()
        self.record.stages.cleanup_s = round(time.monotonic() - started, 3)
        self.record.stages.checks_s = round(sum(c.duration_s or 0 for c in self.record.checks), 3)
        ran = {c.name for c in self.record.checks} | {n.split(" not applicable")[0] for n in self.record.notes}
        self.record.left_out = [n for n in ["restore", *self.check_names()] if n not in ran]
        self._verdict()
        self.record.finished_at = iso(utcnow())
        if reports_dir is not None:
            self.record.write(reports_dir)
        return self.record

    def _verdict(self) -> None:
        record = self.record
        failed = sorted((c for c in record.checks if c.outcome == "failed"), key=lambda c: severity(c.name))
        errors = [c for c in record.checks if c.outcome == "error" and not c.detail.startswith("not run:")]
        database_checks = set(self.database_checks())
        # A defect found before any restore (a wrong or damaged archive): no data check ran to outrank it.
        if isinstance(self.failure, BackupDefect):
            record.verdict, record.reason = "failed", str(self.failure)
        elif failed:
            record.verdict, record.reason = "failed", f"{failed[0].name}: {failed[0].detail}"
        elif self.failure is not None:
            record.verdict, record.reason = "could_not_verify", str(self.failure)
        elif errors:
            record.verdict, record.reason = "could_not_verify", f"{errors[0].name}: {errors[0].detail}"
        elif self.restored is None:
            record.verdict, record.reason = "could_not_verify", "the restore did not complete"
        elif not any(c.name in database_checks and c.outcome == "passed" for c in record.checks):
            record.verdict, record.reason = "could_not_verify", "no check of the restored database ran"
        elif record.left_out:  # what ran passed, but a selection is never a whole pass (DESIGN rule 8)
            planned = 1 + len(self.check_names())  # the restore and every check
            record.verdict = "partial"
            record.reason = f"partial drill: {len(record.left_out)} of {planned} checks did not run: " + ", ".join(
                record.left_out
            )
        else:
            record.verdict, record.reason = "passed", None
