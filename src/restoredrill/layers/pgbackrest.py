"""The pgBackRest drill: the newest set restored into a new data directory and recovered to a target.

One drill per recovery target: `latest` (replay to the end of the archive), `immediate` (the newest set
at consistency), `time` (point in time, promoted). Each restores with `--archive-mode=off` into a fresh
folder, never the source's path, and never writes to the repository. The `latest` drill also checks the
repository: WAL continuity from the oldest retained full backup, `pgbackrest verify`, and the RPO.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from restoredrill import checks as checks_mod
from restoredrill import pgtools, proc
from restoredrill.checks import Restored
from restoredrill.config import DrillConfig, PgBackRestSource
from restoredrill.durations import format_duration, parse_duration
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify, RestoreDrillError
from restoredrill.evidence import CheckRecord, iso, utcnow
from restoredrill.layers import pgbackrest_policy
from restoredrill.layers.base import CheckFunction, LayerDrill, Log
from restoredrill.layers.pgbackrest_errors import classify, error_text
from restoredrill.layers.pgbackrest_repo import BackupSet, PgBackRest, StanzaInfo, restored_set
from restoredrill.layers.replay import (
    ReplayEnd,
    consistent_lsn,
    format_lsn,
    parse_lsn,
    recovery_lines,
    redo_done_lsn,
    stop_cause,
    stopping_time,
)
from restoredrill.layers.wal import Segment, find_gaps, parse_segment
from restoredrill.operate import preflight, progress
from restoredrill.targets.choice import newest_bindir, wants_container
from restoredrill.targets.container import image_for
from restoredrill.targets.local import MARKER, PREFIX, remove_marked_folder, workdir_base
from restoredrill.targets.protocol import RecoveredTarget
from restoredrill.targets.recovered import ContainerRecoveredInstance, RecoveredInstance, RecoveryOutcome

RecoveryKind = Literal["latest", "immediate", "time", "random"]
SLACK_S = 1.0  # commit timestamps and clock_timestamp() of the same row differ by milliseconds


def resolve_target(spec: str, newest_wal_at: datetime) -> datetime:
    """An ISO time as written, or a duration before the newest archived WAL ("1h")."""
    try:
        moment = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        try:
            return newest_wal_at - timedelta(seconds=parse_duration(spec))
        except ValueError:
            raise ConfigError(f"pitr_target '{spec}' is neither an ISO time nor a duration like '1h'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def random_target(seed: int, low: datetime, high: datetime) -> datetime:
    """A point of the window [low, high], reproducible from `seed` (recorded in the evidence)."""
    chooser = random.Random(seed)  # noqa: S311 - a reproducible sample, not security
    return low + (high - low) * chooser.random()


def target_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


_TARGET_UNREACHED = "recovery ended before configured recovery target was reached"
_LAST_COMMIT = re.compile(r"last completed transaction was at log time (\S+ \S+)")


def last_commit_before_unreached_target(
    log_lines: list[str], target: datetime, archive_end: Segment, segment_mb: int = 16
) -> datetime | None:
    """The last replayed commit, when the server gave up on `target` only because nothing committed after it.

    PostgreSQL 13+ stops at a time target on the first commit AFTER it; when the archive holds none it ends
    recovery with FATAL "recovery ended before configured recovery target was reached", the same words as
    for missing or foreign WAL. Two log lines tell the cases apart: "redo done at <LSN>" must lie in the
    newest archived segment (replay read the whole archive), and "last completed transaction was at log
    time ..." must be before the target. None unless both hold.
    """
    if not any(_TARGET_UNREACHED in line for line in log_lines):
        return None
    lsn = redo_done_lsn(log_lines)
    commits = [m.group(1) for line in log_lines if (m := _LAST_COMMIT.search(line))]
    if lsn is None or not commits:
        return None
    if lsn // (segment_mb * 1024 * 1024) != archive_end.number:
        return None  # replay stopped before the archive's end: WAL is missing or unreadable, a defect
    try:
        last = datetime.fromisoformat(commits[-1])
    except ValueError:
        return None
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return last if last <= target else None


def recover_to_time(
    instance: RecoveredTarget,
    target: datetime,
    repo: PgBackRest,
    info: StanzaInfo | None = None,
    segment_mb: int = 16,
) -> RecoveryOutcome:
    """Start the restored copy towards a time target; a target after the last commit gets its own sentence."""
    try:
        return instance.start_and_recover()
    except BackupDefect:
        if info is None:
            info = repo.info()
            if info.archive_id:
                info.wal = repo.archived_wal(info.archive_id)
        newest = info.newest_wal
        last = None
        if newest is not None:
            last = last_commit_before_unreached_target(instance.log_lines(), target, newest.segment, segment_mb)
        if last is None:
            raise
        raise no_commit_after_target(last, target) from None


def no_commit_after_target(last_commit: datetime, target: datetime) -> CouldNotVerify:
    # Not a defect of the backup: the source simply wrote nothing after the target, so no replayed record
    # can show that the target was reached. The drill cannot prove it and must not pass.
    return CouldNotVerify(
        f"no transaction was committed after the PITR target {iso(target)} (the last one in the archive "
        f"committed at {iso(last_commit)}), so PostgreSQL cannot confirm the target was reached: pick a "
        "target before the last commit, or keep a heartbeat writing on the source (see the README)"
    )


class PgBackRestDrill(LayerDrill):
    layer = "pgbackrest"

    def __init__(
        self, config: DrillConfig, database: str, kind: RecoveryKind, run_id: str, log: Log = lambda _m: None
    ) -> None:
        super().__init__(config, database, run_id, log)
        source = self.db_config.pgbackrest
        if source is None:
            raise ValueError(f"{database} has no pgbackrest layer")
        self.source: PgBackRestSource = source
        self.kind = kind
        self.timed = kind in ("time", "random")  # both recover to a point in time
        self.record.recovery_target = kind
        self.record.variant = kind
        # Checks of the repository itself (not of the restored copy) run even when the restore failed.
        repository = ("rpo_newest_wal", "wal_continuity", "pgbackrest_verify") if kind == "latest" else ()
        self.policy = config.pgbackrest_policy(database)
        policy_checks = pgbackrest_policy.plan(self.policy) if kind == "latest" else ()
        self.timing_checks = ("rto", *repository, *policy_checks)
        self.repo: PgBackRest | None = None
        self.info: StanzaInfo | None = None
        self.instance: RecoveredTarget | None = None
        self.work: Path | None = None
        self.target_at: datetime | None = None
        self.outcome: RecoveryOutcome | None = None
        self.restore_log = ""
        self.restored_set: BackupSet | None = None
        self.replay_end: ReplayEnd | None = None
        self.server_log: list[str] = []
        self.reference_at: datetime | None = None
        self._verify_pool: ThreadPoolExecutor | None = None
        self._verify_future: Future[list[str]] | None = None
        self._verify_cancel = threading.Event()

    @property
    def dbname(self) -> str:
        return self.source.database or self.database

    # ----- stage 1 -----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        target = self.config.target
        run_as = proc.RunAs.for_server(target.run_as)
        self.work = Path(tempfile.mkdtemp(prefix=PREFIX + "pgbr-", dir=workdir_base(target.workdir)))
        (self.work / MARKER).write_text(json.dumps({"run_id": self.record.run_id, "owner_pid": os.getpid()}))
        if run_as:
            os.chmod(self.work, 0o711)  # noqa: S103 - traverse only: the server user reaches its lock folder
        repo = self.repo = PgBackRest(
            self.source.stanza,
            config=self.source.config,
            options=self.source.options,
            cipher_pass_env=self.source.cipher_pass_env,
            workdir=self.work,
            run_as=run_as,
            segment_mb=self.source.wal_segment_mb,
        )
        self.record.tool_versions["pgbackrest"] = repo.version()
        info = self.info = repo.info()
        if not info.backups:
            raise BackupDefect(f"stanza '{info.stanza}' has no backup set")
        newest = info.newest
        backup = self.record.backup
        backup.id, backup.taken_at = newest.label, iso(newest.stopped_at)
        backup.location = f"pgbackrest stanza {info.stanza}" + (
            f" ({self.source.config})" if self.source.config else ""
        )
        backup.size_bytes, backup.server_version = newest.repo_size_bytes, newest.database_version
        self.record.rpo_detail = {
            "archive_id": info.archive_id,
            "archive_min": info.archive_min,
            "archive_max": info.archive_max,
            "cipher": info.cipher,
        }
        self.record.backup_sets = [b.evidence() for b in info.backups]
        if info.archive_id:
            info.wal = repo.archived_wal(info.archive_id)
        self.record.storage, unknown = pgbackrest_policy.repository_cost(self.source, info, self.config.cost)
        self.record.notes.extend(unknown)
        newest_wal = info.newest_wal
        if newest_wal is None:
            raise BackupDefect(f"stanza '{info.stanza}' has no archived WAL: no backup can be recovered")
        self.record.rpo_s = round(max(0.0, (utcnow() - newest_wal.archived_at).total_seconds()), 1)
        self.record.rpo_detail.update({"newest_wal": newest_wal.name, "newest_wal_at": iso(newest_wal.archived_at)})

        replay = [w for w in info.wal if newest.archive_start is None or w.name >= newest.archive_start]
        estimate = preflight.pgbackrest_estimate(
            newest.size_bytes, len(replay) * self.source.wal_segment_mb * preflight.MB, self.config.disk_reserve_mb
        )
        preflight.require_room(workdir_base(target.workdir), estimate, f"set {newest.label}")
        recovery = self._recovery_options(info, newest_wal.archived_at)
        common = {
            "run_id": self.record.run_id,
            "base": target.workdir,
            "run_as": run_as,
            "superuser": self.source.superuser,
            "timeout": target.restore_timeout,
            "env": repo.env,
        }
        major = int(pgtools.major_of(info.database_version or newest.database_version))
        if wants_container(target, major):
            bindir = newest_bindir(target.pg_bindir)  # client tools only: the server is the container's
            image = image_for(target.image, major)
            self.record.target = "container"
            self.record.target_info.kind, self.record.target_info.image = "container", image
            self.instance = ContainerRecoveredInstance(
                bindir,
                image=image,
                container_uid=target.container_uid,
                start_timeout=target.start_timeout,
                prefetch=self._prefetch_wal,
                **common,
            )
        else:
            bindir = pgtools.bindir_for(major, target.pg_bindir)
            self.instance = RecoveredInstance(bindir, **common)
        data = self.instance.prepare()
        started = time.monotonic()
        self.log(f"{self.database}: pgbackrest restore ({self.kind}) into {data}")
        reporter = progress.current()
        restoring = reporter.stage(
            f"{self.database}/pgbackrest restore ({self.kind})",
            total=newest.size_bytes,
            unit="bytes",
            probe=progress.tree_size(data),
        )
        with restoring:
            result = repo.restore(data, recovery, timeout=target.restore_timeout)
        self.restore_log = result.stdout + result.stderr
        self.record.stages.restore_s = round(time.monotonic() - started, 3)
        if result.returncode != 0:
            raise _restore_failure(result, encrypted=info.cipher != "none")
        self.restored_set = self._name_restored_set(info, self.restore_log)
        instance = self.instance
        replaying = reporter.stage(
            f"{self.database}/pgbackrest recovery ({self.kind})",
            total=(newest_wal.segment.number + 1) * self.source.wal_segment_mb * preflight.MB,
            unit="wal",
            probe=progress.replay_position(lambda: instance.connection.connect("postgres")),  # type: ignore[union-attr]
        )
        with replaying:
            if self.timed and self.target_at is not None:
                self.outcome = recover_to_time(self.instance, self.target_at, repo, info, self.source.wal_segment_mb)
            else:
                self.outcome = self.instance.start_and_recover()
        if self.instance.image_info:  # it ran in a container: which image
            info_ = self.record.target_info
            info_.image_id = self.instance.image_info.get("image_id")
            info_.image_digest = self.instance.image_info.get("image_digest")
        self.record.stages.recovery_s = round(self.instance.recovery_s or 0, 3)
        assert self.instance.connection is not None
        with self.instance.connection.connect(self.dbname) as conn:  # usable: promoted and answering
            row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        self.record.rto_s = round(time.monotonic() - started, 3)
        self.replay_end = self._replay_end(info, row[0] if row else None)
        self.record.target_info.server_version = self.instance.setting("server_version")
        self.record.target_info.bindir = str(bindir)
        self.record.tool_versions["server"] = self.record.target_info.server_version
        self.reference_at = (
            self.target_at
            if self.timed
            else {"latest": newest_wal.archived_at, "immediate": newest.stopped_at}[self.kind]
        )
        self.restored = Restored(
            connection=self.instance.connection,
            dbname=self.dbname,
            bindir=bindir,
            listing=None,
            manifest=None,
            taken_at=self.reference_at or newest.stopped_at,
            rpo_s=self.objective.rpo,
            restore_returncode=0,
            restore_errors=[],
            check_timeout=target.check_timeout,
            jobs=target.workers,
        )
        with contextlib.suppress(Exception):
            self.record.largest_tables = checks_mod.largest_tables(self.restored)

    def start_scans(self, selected: Iterable[str]) -> list[str]:
        """The scans, and `pgbackrest verify` beside them when its check is selected."""
        wanted = list(selected)
        if "pgbackrest_verify" in wanted and self.restored is not None:
            self._start_verify()
        return super().start_scans(wanted)

    def _start_verify(self) -> None:
        """`pgbackrest verify` (latest only) in a worker; its check joins it. It starts once the copy answers,
        beside the scans, not beside the restore: both read the repository, and sharing the disk with the
        restore made the restore (the RTO we report) half as long again at 10 GB (bench/README.md). Cleanup
        stops it if the drill ends first (a worker thread's tool gets no Ctrl-C)."""
        if self.kind != "latest" or self._verify_future is not None or self.repo is None:
            return
        listed = [b.label for b in self.info.backups] if self.info is not None else None
        self._verify_pool = ThreadPoolExecutor(max_workers=1)
        self._verify_future = self._verify_pool.submit(
            self.repo.verify, self.config.target.workers, listed, self._verify_cancel
        )

    def _name_restored_set(self, info: StanzaInfo, output: str) -> BackupSet:
        """The set pgBackRest says it restored (it picks one itself for a time target), named in the evidence."""
        said = restored_set(output)
        chosen = next((b for b in info.backups if said and b.label == said[0]), None)
        if said is None or chosen is None:
            raise CouldNotVerify(
                "pgbackrest restore did not say which backup set it restored"
                + (f" ({said[0]} is not in the repository's list)" if said else "")
            )
        backup = self.record.backup
        backup.id, backup.taken_at = chosen.label, iso(chosen.stopped_at)
        backup.size_bytes, backup.server_version = chosen.repo_size_bytes, chosen.database_version
        self.record.replay["restored_set"] = {
            "label": chosen.label,
            "type": chosen.type,
            "stop": iso(chosen.stopped_at),
            "lsn_stop": chosen.lsn_stop,
            "proof": f"pgbackrest restore: {said[1]}",
        }
        return chosen

    def _replay_end(self, info: StanzaInfo, replayed: str | None) -> ReplayEnd:
        """Where replay ended (the promoted server, else its log) against the newest archived segment."""
        assert self.instance is not None
        lines = self.instance.log_lines()
        redo = redo_done_lsn(lines)
        end = parse_lsn(replayed or "")
        proof = f"pg_last_wal_replay_lsn() = {replayed} on the promoted server"
        if end is None and redo is not None:
            end, proof = redo + 1, f"the server log: redo done at {format_lsn(redo)}"
        if end is None:
            raise CouldNotVerify("neither the server nor its log says where WAL replay ended")
        if redo is not None:
            proof += f"; the server log: redo done at {format_lsn(redo)}"
        newest = info.newest_wal
        assert newest is not None
        replay = ReplayEnd(
            end_lsn=end,
            end_proof=proof,
            archive_end=newest.segment,
            archive_end_proof=f"the newest segment pgbackrest repo-ls lists in archive/{info.stanza}/{info.archive_id}"
            f" (archive.info max {info.archive_max})",
            redo_done=redo,
            cause=stop_cause(lines),
            segment_mb=self.source.wal_segment_mb,
        )
        self.record.replay.update(replay.evidence())
        self.server_log = lines
        self.record.replay["server_log"] = recovery_lines(lines)
        return replay

    def _prefetch_wal(self, folder: Path) -> None:
        """Every archived segment from the restored set's first one on, fetched by pgBackRest on the host."""
        assert self.instance is not None
        assert self.repo is not None
        assert self.info is not None
        label = (self.instance.data / "backup_label").read_text(errors="replace")
        match = re.search(r"START WAL LOCATION: .*\(file ([0-9A-F]{24})\)", label)
        start = parse_segment(match.group(1), self.source.wal_segment_mb) if match else None
        if start is None:
            raise BackupDefect("the restored set has no readable backup_label: its WAL start is unknown")
        names = [w.name for w in self.info.wal if w.segment >= start]
        self.repo.fetch_wal(names, folder, self.instance.data)
        self.record.notes.append(f"fetched {len(names)} WAL segment(s) on the host for recovery in the container")

    def _recovery_options(self, info: StanzaInfo, newest_wal_at: datetime) -> list[str]:
        jobs = self.config.target.workers
        common = [f"--job-retry={self.source.job_retry}", f"--process-max={jobs}"]
        if self.kind == "latest":
            return [*common, "--type=default"]
        if self.kind == "immediate":
            return [*common, "--type=immediate", "--target-action=promote", f"--set={info.newest.label}"]
        oldest = info.backups[0]
        if self.kind == "random":
            target_at = self.target_at = self._random_target(oldest.stopped_at, newest_wal_at)
        else:
            target_at = self.target_at = resolve_target(self.source.pitr_target, newest_wal_at)
        self.record.recovery_target = iso(target_at) or "time"
        if target_at <= oldest.stopped_at:
            raise BackupDefect(
                f"the PITR target {iso(target_at)} is before the oldest backup set {oldest.label} "
                f"(stopped {iso(oldest.stopped_at)}): the retention does not cover it"
            )
        if target_at > newest_wal_at:
            raise BackupDefect(
                f"the PITR target {iso(target_at)} is after the newest archived WAL "
                f"({iso(newest_wal_at)}): it cannot be reached"
            )
        return [*common, "--type=time", f"--target={target_text(target_at)}", "--target-action=promote"]

    def _random_target(self, oldest_stop: datetime, newest_wal_at: datetime) -> datetime:
        """A new point of the recoverable window on each run (or the configured seed's), its seed recorded.

        The window starts just after the oldest set's stop and ends a marker interval (plus tolerance) before
        the newest archived WAL: a target after the last commit cannot be confirmed by PostgreSQL at all."""
        seed = self.source.random_seed
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        marker = self.source.marker
        margin = (marker.interval + marker.tolerance) if marker is not None else 60.0
        low, high = oldest_stop + timedelta(seconds=1), newest_wal_at - timedelta(seconds=margin)
        if high <= low:
            raise CouldNotVerify(
                f"the recoverable window is empty: the oldest set stopped at {iso(oldest_stop)} and the newest "
                f"archived WAL is from {iso(newest_wal_at)}, less than {format_duration(margin)} later"
            )
        target = random_target(seed, low, high)
        self.record.replay["random_target"] = {
            "seed": seed,
            "window_start": iso(low),
            "window_end": iso(high),
            "target": iso(target),
            "target_exact": target_text(target),
        }
        return target

    # ----- stage 2 -----------------------------------------------------------------------------------
    def database_checks(self) -> dict[str, CheckFunction]:
        found: dict[str, CheckFunction] = {
            "recovery": lambda _db: self._recovery_check(),
            "archive_mode_off": lambda _db: self._archive_mode_check(),
            "replay_proof": lambda db: self._replay_proof(db),
        }
        if self.kind == "latest" and self.source.ledger is not None:
            found["ledger_pitr"] = lambda db: self._ledger_check(db)
        found["drift"] = self.drift
        found["amcheck"] = checks_mod.amcheck
        found["sequences"] = checks_mod.sequences
        return {**found, **checks_mod.configured_checks(self.db_config.checks)}

    def restore_detail(self) -> str:
        return (
            f"restored set {self.record.backup.id} ({self.record.backup.size_bytes} bytes in the repository) "
            f"and recovered to {self.record.recovery_target} in {format_duration(self.record.rto_s)}"
        )

    def _timing(self, name: str) -> CheckRecord:
        if name == "rto":
            return self.rto_check("restore + recovery until promoted")
        if self.info is None or self.record.rpo_s is None:
            return self.not_run(name)
        if name == "wal_continuity":
            return self._continuity_check()
        if name == "pgbackrest_verify":
            try:
                return self._verify_check()
            except RestoreDrillError as exc:
                return CheckRecord(name=name, outcome="error", detail=f"pgbackrest verify could not run: {exc}")
        if name.startswith("policy_"):
            return self._policy_check(name)
        age, allowed = self.record.rpo_s, self.objective.rpo
        return CheckRecord(
            name=name,
            outcome="passed" if age <= allowed else "failed",
            detail=f"newest archived WAL {self.record.rpo_detail.get('newest_wal')} is {format_duration(age)} old "
            f"(RPO {format_duration(allowed)})" + ("" if age <= allowed else ": WAL archiving has stalled"),
        )

    def _policy_check(self, name: str) -> CheckRecord:
        """The repository against the policy (pgbackrest_policy); pg_stat_archiver's count kept for the next run."""
        assert self.policy is not None
        assert self.info is not None
        reports, database, run_id = self.config.reports_dir, self.database, self.record.run_id
        record, failed = pgbackrest_policy.check(
            name,
            self.policy,
            self.source,
            self.info,
            self.objective.rpo,
            lambda: pgbackrest_policy.previous_failed_count(reports, database, run_id),
        )
        if failed is not None:
            self.record.rpo_detail["archiver_failed_count"] = failed
        return record

    def _recovery_check(self) -> CheckRecord:
        """Recovery reached its target, proven by LSN and by the server's own log lines."""
        outcome, replay = self.outcome, self.replay_end
        assert outcome is not None
        assert replay is not None
        if not outcome.completed:
            return CheckRecord(
                name="recovery", outcome="failed", detail="the server log never says 'archive recovery complete'"
            )
        if self.kind == "latest":
            ok, detail = replay.reached_archive_end, replay.sentence()
        elif self.kind == "immediate":
            ok, detail = self._immediate_reached(outcome.stopped, replay)
        else:
            ok, detail = self._time_reached(outcome.stopped, replay)
        replayed = f"; last replayed transaction at {iso(outcome.last_replayed_at)}" if outcome.last_replayed_at else ""
        return CheckRecord(
            name="recovery",
            outcome="passed" if ok else "failed",
            detail=f"{detail}; archive recovery complete, promoted{replayed}"
            if ok
            else f"recovery did not reach its target: {detail}",
        )

    def _immediate_reached(self, stopped: str | None, replay: ReplayEnd) -> tuple[bool, str]:
        chosen = self.restored_set
        assert chosen is not None
        stop_lsn = parse_lsn(chosen.lsn_stop or "")
        consistent = consistent_lsn(self.server_log)
        if stopped is None or "consistency" not in stopped:
            return False, "the server log never says recovery stopped at consistency"
        if stop_lsn is None:
            return False, f"pgbackrest info gives no stop LSN for set {chosen.label}: its end cannot be proven"
        where = (
            f"{stopped} (server log{f', consistent at {format_lsn(consistent)}' if consistent is not None else ''}); "
            f"replay ended at LSN {format_lsn(replay.end_lsn)} ({replay.end_proof}); set {chosen.label} stops at "
            f"LSN {chosen.lsn_stop} (pgbackrest info)"
        )
        if replay.end_lsn < stop_lsn:
            cause = f": the server said: {replay.cause}" if replay.cause else ""
            return False, f"{where}: replay ended before the set's stop LSN{cause}"
        return True, f"{where}: the set's stop LSN was reached"

    def _time_reached(self, stopped: str | None, replay: ReplayEnd) -> tuple[bool, str]:
        target = self.target_at
        assert target is not None
        parsed = stopping_time(stopped or "")
        if stopped is None or parsed is None:
            cause = f" (the server said: {replay.cause})" if replay.cause else ""
            return False, f"the server log never says the recovery target {iso(target)} was reached{cause}"
        side, at = parsed
        # Stopping BEFORE a commit means that commit is the first after the target; stopping AFTER one
        # (recovery_target_inclusive) means it committed at the target.
        ok = at > target if side == "before" else at <= target
        where = (
            f"{stopped} (server log) for target {target_text(target)}; replay ended at LSN "
            f"{format_lsn(replay.end_lsn)} ({replay.end_proof})"
        )
        if not ok:
            return False, f"{where}: the stop does not agree with the target"
        # Exactly at the target: the next commit was not replayed (above) and the last one replayed is not after it.
        replayed = self.outcome.last_replayed_at if self.outcome else None
        if replayed is not None and replayed > target and side == "before":
            return False, f"{where}: a transaction committed at {iso(replayed)}, after the target, was replayed"
        last = f"the last replayed commit at {replayed.isoformat()}" if replayed else "no commit replayed"
        return True, f"{where}: recovery stopped at the target ({last}; no commit after the target was replayed)"

    def _archive_mode_check(self) -> CheckRecord:
        assert self.instance is not None
        mode = self.instance.setting("archive_mode")
        return CheckRecord(
            name="archive_mode_off",
            outcome="passed" if mode == "off" else "failed",
            detail=f"archive_mode is {mode}: the copy "
            + ("cannot push WAL into the repository" if mode == "off" else "could archive into production"),
            sql="SHOW archive_mode",
        )

    def _replay_proof(self, db: Restored) -> CheckRecord:
        marker = self.source.marker
        if marker is not None:
            return self._marker_check(db, marker.table, marker.column, marker.interval, marker.tolerance)
        freshness = checks_mod.configured_checks(self.db_config.checks)
        fresh = {n: f for n, f in freshness.items() if n.startswith("freshness:")}
        if fresh:
            results = [f(db) for f in fresh.values()]
            ok = all(r.outcome == "passed" for r in results)
            return CheckRecord(
                name="replay_proof",
                outcome="passed" if ok else "failed",
                detail="by freshness columns: " + "; ".join(r.detail for r in results),
            )
        return CheckRecord(
            name="replay_proof",
            outcome="error",
            detail="replay was not proven: configure a marker (heartbeat table) or a freshness check",
        )

    def _marker_check(self, db: Restored, table: str, column: str, interval: float, tolerance: float) -> CheckRecord:
        schema, _, name = table.rpartition(".")
        relation = sql.SQL("{}.{}").format(sql.Identifier(schema or "public"), sql.Identifier(name))
        query = sql.SQL("SELECT max({c}) FROM {t}").format(c=sql.Identifier(column), t=relation)
        assert self.info is not None
        with db.connect() as conn:
            text = query.as_string(conn)
            row = conn.execute(query).fetchone()
            newest = row[0] if row else None
            after = 0
            upper = self._marker_upper()
            if upper is not None:
                later = sql.SQL("SELECT count(*) FROM {t} WHERE {c} > %s").format(c=sql.Identifier(column), t=relation)
                counted = conn.execute(later, (upper,)).fetchone()
                after = int(counted[0]) if counted else 0
        if newest is None:
            return CheckRecord(
                name="replay_proof",
                outcome="failed",
                sql=text,
                detail=f"the marker table {table} is empty: replay cannot be proven",
            )
        lower = self._marker_lower(interval, tolerance)
        problems = []
        if lower is not None and newest < lower:
            lost = (lower - newest).total_seconds() + interval + (tolerance if self.kind == "latest" else SLACK_S)
            problems.append(
                f"newest marker {iso(newest)} is {format_duration(lost)} short of "
                f"{'the newest archived WAL' if self.kind == 'latest' else 'the target'} "
                f"({iso(self.reference_at)}): WAL replay stopped early and data is missing"
            )
        if after:
            problems.append(f"{after} marker row(s) are newer than the target {iso(upper)}: recovery went too far")
        if problems:
            return CheckRecord(name="replay_proof", outcome="failed", detail="; ".join(problems), sql=text)
        assert self.reference_at is not None
        gap = (self.reference_at - newest).total_seconds()
        allowed = (self.reference_at - lower).total_seconds() if lower is not None else None
        return CheckRecord(
            name="replay_proof",
            outcome="passed",
            sql=text,
            detail=f"newest marker {iso(newest)} is {gap:.1f}s "
            f"{'before' if gap >= 0 else 'after'} {self.kind} ({iso(self.reference_at)})"
            + (f", allowed {allowed:.1f}s (marker interval + tolerance)" if allowed is not None else "")
            + (f"; no marker after {iso(upper)}" if upper is not None else ""),
        )

    def _marker_lower(self, interval: float, tolerance: float) -> datetime | None:
        assert self.info is not None
        assert self.reference_at is not None
        if self.kind == "latest":
            return self.reference_at - timedelta(seconds=interval + tolerance)
        if self.kind == "immediate":
            return self.info.newest.started_at - timedelta(seconds=interval + SLACK_S)
        return self.reference_at - timedelta(seconds=interval + SLACK_S)

    def _marker_upper(self) -> datetime | None:
        assert self.info is not None
        if self.timed:
            return self.target_at
        if self.kind == "immediate":
            return self.info.newest.stopped_at + timedelta(seconds=SLACK_S)
        return None

    def _continuity_check(self) -> CheckRecord:
        info = self.info
        assert info is not None
        oldest_full = info.oldest_full
        start = parse_segment(oldest_full.archive_start or "", self.source.wal_segment_mb) if oldest_full else None
        segments = [w.segment for w in info.wal]
        gaps = find_gaps(segments, start)
        span = f"{info.wal[0].name}..{info.wal[-1].name}" if info.wal else "nothing"
        if not gaps:
            return CheckRecord(
                name="wal_continuity",
                outcome="passed",
                detail=f"{len(segments)} archived segments {span}, continuous from the oldest "
                f"retained full backup {oldest_full.label if oldest_full else '?'}",
            )
        sentences = []
        by_segment = {w.segment: w for w in info.wal}
        for gap in gaps:
            before = by_segment.get(gap.before)
            since = iso(before.archived_at) if before else "the oldest full backup"
            after = next(
                (
                    b
                    for b in info.backups
                    if b.archive_start and (seg := parse_segment(b.archive_start)) and seg > gap.last
                ),
                None,
            )
            window = (
                f"targets between {since} and the stop of backup {after.label} ({iso(after.stopped_at)}) "
                "cannot be recovered"
                if after
                else f"no target after {since} can be recovered, not even by replaying to the end"
            )
            sentences.append(f"{gap.describe(self.source.wal_segment_mb)}: point-in-time recovery is broken: {window}")
        return CheckRecord(name="wal_continuity", outcome="failed", detail="; ".join(sentences))

    def _verify_check(self) -> CheckRecord:
        assert self.repo is not None
        self._start_verify()  # not started yet when the restore failed: the repository is verified all the same
        assert self._verify_future is not None
        problems = self._verify_future.result()
        if problems:
            return CheckRecord(
                name="pgbackrest_verify",
                outcome="failed",
                detail="pgbackrest verify reports: " + "; ".join(problems[:6]),
            )
        return CheckRecord(
            name="pgbackrest_verify",
            outcome="passed",
            detail="pgbackrest verify found no invalid or missing file (read from its output; "
            "its exit code is 0 even on errors)",
        )

    def _ledger_check(self, db: Restored) -> CheckRecord:
        ledger = self.source.ledger
        assert ledger is not None
        assert self.info is not None
        committed = ledger_commits(db, ledger.table, ledger.id_column)
        if not committed:
            return CheckRecord(
                name="ledger_pitr",
                outcome="error",
                detail=f"{ledger.table} has no rows with a commit timestamp (track_commit_timestamp must be on)",
            )
        low = self.info.backups[0].stopped_at + timedelta(seconds=1)
        high = max(committed.values())
        if high <= low:
            return CheckRecord(
                name="ledger_pitr",
                outcome="error",
                detail="no ledger commit after the oldest backup: no window to test",
            )
        chooser = random.Random(self.record.run_id)  # noqa: S311 - reproducible from the run id, not security
        targets = sorted(low + (high - low) * chooser.random() for _ in range(ledger.examples))
        problems, tried = [], []
        for target in targets:
            expected = {i for i, at in committed.items() if at <= target}
            found = self.restore_ledger_at(target, ledger.table, ledger.id_column)
            tried.append(f"{iso(target)}: {len(found)} rows")
            if found != expected:
                missing, extra = sorted(expected - found)[:5], sorted(found - expected)[:5]
                problems.append(
                    f"at {target_text(target)} expected {len(expected)} rows, found {len(found)} "
                    f"(missing ids {missing}, unexpected ids {extra})"
                )
        if problems:
            return CheckRecord(name="ledger_pitr", outcome="failed", detail="; ".join(problems))
        return CheckRecord(
            name="ledger_pitr",
            outcome="passed",
            detail=f"{len(targets)} random PITR targets each held exactly the ledger rows committed "
            f"at or before them ({'; '.join(tried)})",
        )

    def restore_ledger_at(self, target: datetime, table: str, id_column: str) -> set[int]:
        """A separate PITR restore to `target`; the ids of the ledger rows it holds."""
        assert self.repo is not None
        assert self.instance is not None
        return rows_at(
            self.repo,
            self.instance.bindir,
            target,
            table,
            id_column,
            dbname=self.dbname,
            run_id=self.record.run_id,
            base=self.config.target.workdir,
            run_as=self.instance.user,
            superuser=self.source.superuser,
            timeout=self.config.target.restore_timeout,
            job_retry=self.source.job_retry,
        )

    def restore_log_tail(self, lines: int = 40) -> str:
        text = self.restore_log.strip()
        if self.instance is not None and self.instance.root is not None:
            text += "\n--- server log ---\n" + self.instance.log_tail(lines)
        return proc.redact("\n".join(text.splitlines()[-lines:]))

    # ----- stage 3 -----------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        if self._verify_pool is not None:
            self._verify_cancel.set()  # a verify still running (interrupted, or its check left out) is stopped
            self._verify_pool.shutdown(wait=False, cancel_futures=True)
        if self.instance is not None:
            if self.outcome is None and self.instance.root is not None:
                self.record.notes.append("server log tail: " + self.instance.log_tail(5).replace("\n", " | "))
                self.record.replay["server_log"] = recovery_lines(self.instance.log_lines())
            self.instance.destroy()
        if self.work is not None:
            remove_marked_folder(self.work)


def rows_at(
    repo: PgBackRest,
    bindir: Path,
    target: datetime,
    table: str,
    id_column: str,
    *,
    dbname: str,
    run_id: str,
    base: Path | None,
    run_as: proc.RunAs | None,
    superuser: str,
    timeout: float,
    job_retry: int = 0,
) -> set[int]:
    """Restore the repository to `target` in a throwaway instance; the ids of `table` it holds."""
    with RecoveredInstance(
        bindir, run_id=run_id, base=base, run_as=run_as, superuser=superuser, timeout=timeout, env=repo.env
    ) as probe:
        data = probe.prepare()
        options = [
            f"--job-retry={job_retry}",
            "--type=time",
            f"--target={target_text(target)}",
            "--target-action=promote",
        ]
        result = repo.restore(data, options, timeout=timeout)
        if result.returncode != 0:
            raise _restore_failure(result)
        recover_to_time(probe, target, repo)
        assert probe.connection is not None
        schema, _, name = table.rpartition(".")
        query = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.Identifier(id_column), sql.Identifier(schema or "public"), sql.Identifier(name)
        )
        with probe.connection.connect(dbname) as conn:
            return {int(r[0]) for r in conn.execute(query).fetchall()}


def ledger_commits(db: Restored, table: str, id_column: str) -> dict[int, datetime]:
    schema, _, name = table.rpartition(".")
    query = sql.SQL("SELECT {}, pg_xact_commit_timestamp(xmin) FROM {}.{}").format(
        sql.Identifier(id_column), sql.Identifier(schema or "public"), sql.Identifier(name)
    )
    with db.connect() as conn:
        try:
            rows = conn.execute(query).fetchall()
        except psycopg.Error:
            return {}
    return {int(i): at for i, at in rows if at is not None}


def _restore_failure(result: proc.Completed, *, encrypted: bool = False) -> Exception:
    """pgBackRest's own error kinds decide (see pgbackrest_errors); its error lines are quoted whole."""
    text = (result.stdout + "\n" + result.stderr).strip()
    if "[075]" in text and "stop time less than" in text:
        return BackupDefect(f"no backup set is old enough for the PITR target: {error_text(text)}")
    return classify(text, f"restoring (pgbackrest restore exit {result.returncode})", encrypted=encrypted)
