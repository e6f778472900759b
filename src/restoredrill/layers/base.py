"""What every drill shares: one restore, checks recorded one by one, cleanup, and the verdict.

A layer's drill subclasses `LayerDrill` and provides `_prepare` (discover, fetch, restore: failures are
raised as BackupDefect or CouldNotVerify and kept), `timing_checks`, `database_checks`, `_timing`,
`restore_detail` and `_cleanup`. Checks a team wrote themselves (pytest tests using the `restored`
fixture) are planned with `plan_extra` and recorded with `record_check`, like any built-in check.
The verdict is `verdicts.drill_verdict`, the one rule every report reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from restoredrill import checks as checks_mod
from restoredrill import drift as drift_mod
from restoredrill.checks import NotApplicable, Restored
from restoredrill.config import DrillConfig, Layer
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify, RestoreDrillError
from restoredrill.evidence import CheckRecord, DrillRecord, Objectives, Outcome, base_tool_versions, iso, utcnow
from restoredrill.verdicts import drill_verdict

Log = Callable[[str], None]

CheckFunction = Callable[[Restored], CheckRecord]

# The checks that read a whole database (every row, or every page and index entry). They are started together
# as soon as the restore is usable, up to the target's `jobs` at once, rather than one after another as their
# tests come: a single scan rarely keeps every core busy (pg_amcheck checks a table's heap on one core while
# a count or a content hash runs in parallel workers). Each test then takes its scan's record.
SCANNING_CHECKS = ("manifest_row_counts", "manifest_content", "amcheck", "drift")


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
        self.extra_checks: list[str] = []  # a team's own checks planned for this drill (its pytest tests)
        self._scan_pool: ThreadPoolExecutor | None = None
        self._scans: dict[str, Future[CheckRecord]] = {}
        self._checks_started: float | None = None  # the checks stage is wall time, like every other stage

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

    def start_scans(self, selected: Iterable[str]) -> list[str]:
        """Start the scanning checks among `selected` (the checks this run's selection will ask for: a check
        left out never runs), in worker threads; returns their names. Nothing to overlap: nothing started."""
        if self.restored is None:
            return []
        checks = self.database_checks()
        wanted = set(selected)
        names = [name for name in SCANNING_CHECKS if name in wanted and name in checks]
        if len(names) < 2:
            return []
        self._mark_checks_started()
        self._prepare_scans(names)
        workers = max(1, min(self.restored.jobs, len(names)))
        pool = self._scan_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan")
        for name in names:
            self._scans[name] = pool.submit(checks_mod.run_check, name, checks[name], self.restored)
        return names

    def _prepare_scans(self, names: list[str]) -> None:
        """What must happen before scans run side by side so that no scan sees another's writes."""
        if "amcheck" in names and self.restored is not None:
            checks_mod.install_amcheck(self.restored)

    def _stop_scans(self) -> None:
        """Scans not started are cancelled; running ones end with the server, which cleanup stops next."""
        if self._scan_pool is not None:
            self._scan_pool.shutdown(wait=False, cancel_futures=True)

    def check_names(self) -> list[str]:
        return [*self.timing_checks, *self.database_checks()]

    def plan_extra(self, names: list[str]) -> None:
        """Checks beyond the built-in ones (a team's own tests): a selection that leaves one out is PARTIAL."""
        self.extra_checks = [n for n in names if n not in self.check_names() and n != "restore"]

    def planned(self) -> list[str]:
        return ["restore", *self.check_names(), *self.extra_checks]

    def record_check(self, record: CheckRecord) -> CheckRecord:
        self.record.add_check(record)
        return record

    def restore_detail(self) -> str:
        raise NotImplementedError

    def restore_outcome(self) -> CheckRecord:
        """The restore itself as a check: passed once a usable database exists."""
        if self.restored is not None:
            record = CheckRecord(name="restore", outcome=Outcome.PASSED, detail=self.restore_detail())
        elif isinstance(self.failure, BackupDefect):
            record = CheckRecord(name="restore", outcome=Outcome.FAILED, detail=str(self.failure))
        else:
            reason = str(self.failure) if self.failure else "the restore did not complete"
            record = CheckRecord(name="restore", outcome=Outcome.ERROR, detail=f"could not verify: {reason}")
        self.record.add_check(record)
        return record

    def not_run(self, name: str) -> CheckRecord:
        """A check that cannot run because the restore did not give a usable database."""
        reason = str(self.failure) if self.failure else "the restore did not complete"
        return CheckRecord(name=name, outcome=Outcome.NOT_RUN, detail=f"not run: {reason}")

    def check(self, name: str) -> CheckRecord:
        """Run one check and record it. NotApplicable is recorded as such, then propagates (pytest skips)."""
        self._mark_checks_started()
        try:
            if name in self.timing_checks:
                started = time.monotonic()
                record = self._timing(name)
                record.duration_s = round(time.monotonic() - started, 3)
            elif self.restored is None:
                record = self.not_run(name)
            elif name in self._scans:
                record = self._scans.pop(name).result()  # its NotApplicable is raised here, in the test
            else:
                record = checks_mod.run_check(name, self.database_checks()[name], self.restored)
        except NotApplicable as exc:
            self.record.add_check(CheckRecord(name=name, outcome=Outcome.NOT_APPLICABLE, detail=str(exc)))
            raise
        self.record.add_check(record)
        return record

    def _mark_checks_started(self) -> None:
        if self._checks_started is None:
            self._checks_started = time.monotonic()

    def _timing(self, name: str) -> CheckRecord:
        raise NotImplementedError

    def drift(self, db: Restored) -> CheckRecord:
        """The `drift` check: measure the restored database's shape (row counts, object names, size; never row
        content), keep it in the record (and so in the history), and compare it with the last passing drill of
        the same database, layer and variant ([drift] tolerances). The first such drill raises NotApplicable,
        saying its shape is recorded as the baseline. Needs no manifest."""
        with db.connect() as conn:
            self.record.shape = drift_mod.measure(conn, checks_mod.exact_row_counts(db, conn))
        key = (self.database, self.layer, self.record.variant)
        baseline = drift_mod.find_baseline(self.config.reports_dir, key, self.record.run_id)
        policy = self.config.drift_policy(self.database)
        return drift_mod.drift_check(self.record.shape, baseline, policy, self.record.variant)

    def rto_check(self, what: str) -> CheckRecord:
        if self.record.rto_s is None:
            return self.not_run("rto")
        rto, allowed = self.record.rto_s, self.objective.rto
        return CheckRecord(
            name="rto",
            outcome=Outcome.PASSED if rto <= allowed else Outcome.FAILED,
            detail=f"{what} took {format_duration(rto)} (RTO {format_duration(allowed)})",
        )

    # ----- stage 3: cleanup and the verdict --------------------------------------------------------------
    def _cleanup(self) -> None:
        raise NotImplementedError

    def finish(self, reports_dir: Path | None = None) -> DrillRecord:
        started = time.monotonic()
        self._stop_scans()
        try:
            self._cleanup()
        finally:
            if self._scan_pool is not None:
                self._scan_pool.shutdown(wait=True)  # their tools and connections are gone with the server
        self.record.stages.cleanup_s = round(time.monotonic() - started, 3)
        # From the first check (or the scans) until cleanup: the scans overlap, so the sum of the checks'
        # own durations would say more time than passed.
        self.record.stages.checks_s = round(started - self._checks_started, 3) if self._checks_started else 0.0
        ran = {c.name for c in self.record.checks}
        self.record.left_out = [n for n in self.planned() if n not in ran]
        verdict = drill_verdict(
            self.record,
            failure=self.failure,
            restored=self.restored is not None,
            database_checks={*self.database_checks(), *self.extra_checks},
            planned=len(self.planned()),
        )
        self.record.verdict, self.record.reason = verdict.verdict, verdict.reason
        self.record.finished_at = iso(utcnow())
        if reports_dir is not None:
            self.record.write(reports_dir)
        return self.record
