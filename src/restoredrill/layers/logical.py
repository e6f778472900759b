"""The logical drill: newest pg_dump -> fetch (streamed, hashed) -> verify -> pg_restore -j -> checks.

One restore per database, shared by all its checks. The engine knows nothing of pytest: the drills in
drills/ call `prepare`, `check` and `finish`, and `restoredrill` could call them from anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from restoredrill import checks as checks_mod
from restoredrill import cost, pgtools, proc
from restoredrill.checks import NotApplicable, Restored
from restoredrill.config import DrillConfig
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, CouldNotVerify, RestoreDrillError
from restoredrill.evidence import CheckRecord, iso, utcnow
from restoredrill.layers import logical_policy
from restoredrill.layers import logical_records as records
from restoredrill.layers.base import CheckFunction, LayerDrill, Log
from restoredrill.layers.logical_keys import DumpKey, dumps_of, recovery_point
from restoredrill.manifest import Manifest
from restoredrill.operate import preflight, progress
from restoredrill.stores import Store, StoredObject, open_store
from restoredrill.targets.ahead import InitializedAhead
from restoredrill.targets.choice import (
    check_container,
    container_instance,
    local_instance,
    newest_bindir,
    wants_container,
)
from restoredrill.targets.container import image_for
from restoredrill.targets.local import MARKER, PREFIX, remove_marked_folder, workdir_base
from restoredrill.targets.prepared import PreparedContainer
from restoredrill.targets.protocol import FreshTarget

_ERROR_LINE = re.compile(r"^pg_restore: error: (.*)$")
_IGNORED = re.compile(r"errors ignored on restore: (\d+)")
TIMING_CHECKS = ("rpo_newest_age", "rpo_largest_gap", "rto")


def restore_messages(stderr: str) -> list[str]:
    """Every error pg_restore printed: an exit code of 0 with errors printed is still a failed restore."""
    errors = [m.group(1).strip() for line in stderr.splitlines() if (m := _ERROR_LINE.match(line.strip()))]
    ignored = _IGNORED.search(stderr)
    if ignored and not errors:
        errors.append(f"pg_restore ignored {ignored.group(1)} error(s)")
    return errors


class LogicalDrill(LayerDrill):
    layer = "logical"
    timing_checks = TIMING_CHECKS

    def __init__(self, config: DrillConfig, database: str, run_id: str, log: Log = lambda _m: None) -> None:
        super().__init__(config, database, run_id, log)
        source = self.db_config.logical
        if source is None:
            raise ValueError(f"{database} has no logical layer")
        self.source = source
        self.policy = config.logical_policy(database)
        policy_plan = logical_policy.plan(self.policy, source.source)
        self.timing_checks = (*TIMING_CHECKS, *policy_plan.names)
        self.policy_not_applicable = policy_plan.not_applicable
        self.store: Store | None = None
        self.dumps: list[DumpKey] = []
        self.objects: list[StoredObject] = []
        self.listed_at = utcnow()
        self.instance: FreshTarget | None = None
        self.fetch_dir: Path | None = None
        self.restore_log = ""
        self.newest: DumpKey | None = None
        self.ahead: InitializedAhead | None = None

    # ----- stage 1: everything up to a usable restored database -------------------------------------
    def _prepare(self) -> None:
        now = utcnow()
        # With one server major here, the target's folder is known before the bucket is even opened.
        self.ahead = self._initialize_ahead(None)
        store, prefix = open_store(
            self.source.source,
            endpoint_url=self.source.endpoint_url,
            region=self.source.region,
            profile=self.source.profile,
        )
        dump_name = self.source.dump_name or self.database
        self.store, self.listed_at = store, now
        self.objects = list(store.list(prefix))
        dumps = self.dumps = dumps_of(prefix, dump_name, [(o.key, o.size) for o in self.objects])
        self.record.storage = cost.logical_storage(self.source.source, dumps, self.objects, self.config.cost)
        if not dumps:
            raise BackupDefect(
                f"no dump of '{dump_name}' found under {self.source.source} "
                f"(expected keys <date>/{dump_name}-<YYYY-MM-DDTHH-MM-SS>.dump)"
            )
        newest = self.newest = dumps[-1]
        point = recovery_point(dumps, now, self.source.retention_days)
        self.record.rpo_s = round(point.newest_age_s, 1)
        self.record.rpo_detail = {
            "newest_age_s": round(point.newest_age_s, 1),
            "largest_gap_s": point.largest_gap_s,
            "gap_from": iso(point.gap_from),
            "gap_to": iso(point.gap_to),
            "dumps_in_window": point.dumps_in_window,
            "retention_days": self.source.retention_days,
        }
        backup = self.record.backup
        backup.id, backup.taken_at, backup.location = newest.key, iso(newest.taken_at), store.location(newest.key)
        metadata = store.metadata(newest.key)
        if self.ahead is None:
            self.ahead = self._initialize_ahead(metadata.get("server-version"))
        manifest_text = store.read_text(newest.manifest_key)
        manifest = None
        if manifest_text is not None:
            try:
                manifest = Manifest.from_json(manifest_text)
            except (ValueError, KeyError, TypeError) as exc:
                raise BackupDefect(f"the manifest {newest.manifest_key} is unreadable: {exc}") from None
            backup.manifest = store.location(newest.manifest_key)
            backup.manifest_sha256_expected = metadata.get("manifest-sha256")
            backup.manifest_sha256 = records.verify_manifest_file(manifest_text, metadata, manifest)
        recorded = records.Recorded.of(metadata, manifest)
        backup.sha256_expected = recorded.sha256

        # Room for the dump and the restored database, before anything is written.
        database_size = manifest.dump.get("database_size_bytes") if manifest else None
        estimate = preflight.logical_estimate(newest.size, database_size, self.config.disk_reserve_mb)
        preflight.require_room(workdir_base(self.config.target.workdir), estimate, newest.key)

        # Fetch: streamed to disk, hashed on the way. RTO starts here.
        self.fetch_dir = Path(tempfile.mkdtemp(prefix=PREFIX + "fetch-", dir=workdir_base(self.config.target.workdir)))
        (self.fetch_dir / MARKER).write_text(json.dumps({"run_id": self.record.run_id, "owner_pid": os.getpid()}))
        started = time.monotonic()
        self.log(f"{self.database}: fetching {backup.location}")
        reporter, dump_file = progress.current(), self.fetch_dir / "backup.dump"
        fetching = reporter.stage(
            f"{self.database}/logical fetch", total=newest.size, unit="bytes", probe=progress.file_size(dump_file)
        )
        with fetching:
            download = store.download(newest.key, dump_file)
        self.record.stages.fetch_s = round(time.monotonic() - started, 3)
        backup.size_bytes, backup.sha256 = download.size_bytes, download.sha256
        records.verify_dump(download.size_bytes, download.sha256, recorded)
        if not recorded.sha256:
            self.record.notes.append("no checksum recorded at backup time: integrity rests on pg_restore alone")

        # Verify: the archive's header and TOC are readable, and we have a server for its major.
        reader = pgtools.client_tool(
            "pg_restore", max(pgtools.available_bindirs(self.config.target.pg_bindir).items(), default=(0, None))[1]
        )
        listing = pgtools.list_dump(reader, download.path)
        backup.server_version, backup.pg_dump_version = listing.server_version, listing.pg_dump_version
        self._check_identity(listing.database)
        major = listing.server_major
        assert major is not None
        # Restore into a fresh database of a throwaway instance: a container of the dump's major, or a local
        # server (the same major, else the nearest newer one).
        restore_started = time.monotonic()
        target = self.config.target
        if wants_container(target, major):
            bindir = newest_bindir(target.pg_bindir)  # client tools only: the server is the container's
            ahead, self.ahead = self.ahead, None
            folder = ahead.take(pgtools.available_bindirs(target.pg_bindir).get(major)) if ahead else None
            if folder is not None:  # the image's own initdb skipped: see targets/prepared.py
                self.instance = PreparedContainer(
                    image_for(target.image, major),
                    folder,
                    run_id=self.record.run_id,
                    container_uid=target.container_uid,
                    start_timeout=target.start_timeout,
                )
            else:
                self.instance = container_instance(target, major, self.record.run_id)
            self.instance.start()
            check_container(self.record, self.instance, major)
        else:
            bindir = pgtools.bindir_for(major, target.pg_bindir)
            ahead, self.ahead = self.ahead, None
            prepared = ahead.take(bindir) if ahead else None
            self.instance = prepared or local_instance(target, bindir, self.record.run_id)
            self.instance.start()
            self.record.target_info.server_version = self.instance.server_version()
            if pgtools.major_of(self.record.target_info.server_version) != major:
                self.record.notes.append(
                    f"restored a PostgreSQL {major} dump into PostgreSQL "
                    f"{self.record.target_info.server_version}: no server of the same major here"
                )
        self.record.target_info.bindir = str(bindir)
        self.record.target_info.startup_s = round(self.instance.startup_s or 0, 3)
        dbname = self.database
        self.instance.create_database(dbname)
        jobs = target.workers
        assert self.instance.connection is not None
        connection = self.instance.connection
        pg_restore = pgtools.client_tool("pg_restore", bindir)
        self.log(f"{self.database}: pg_restore -j {jobs} into {connection.host}:{connection.port}")
        loading = reporter.stage(
            f"{self.database}/logical restore",
            total=sum(1 for entry in listing.entries if entry.kind == "TABLE DATA"),
            unit="tables",
            probe=progress.tables_loaded(lambda: connection.connect(dbname)),
        )
        with loading:
            result = proc.run(
                [
                    pg_restore,
                    "-j",
                    str(jobs),
                    "--no-owner",
                    "--no-acl",
                    "-h",
                    connection.host,
                    "-p",
                    str(connection.port),
                    "-U",
                    connection.user,
                    "-d",
                    dbname,
                    str(download.path),
                ],
                timeout=target.restore_timeout,
                env=connection.env(),
                what="pg_restore",
            )
        self.restore_log = result.stderr
        with connection.connect(dbname) as conn:  # usable: it accepts connections and answers
            conn.execute("SELECT 1")
        finished = time.monotonic()
        self.record.stages.restore_s = round(finished - restore_started, 3)
        self.record.rto_s = round(finished - started, 3)
        self.record.tool_versions.update(
            {"pg_restore": self._version(pg_restore), "server": self.record.target_info.server_version or ""}
        )
        self.restored = Restored(
            connection=connection,
            dbname=dbname,
            bindir=bindir,
            listing=listing,
            manifest=manifest,
            taken_at=newest.taken_at,
            rpo_s=self.objective.rpo,
            restore_returncode=result.returncode,
            restore_errors=restore_messages(result.stderr),
            require_manifest=self.source.require_manifest,
            check_timeout=target.check_timeout,
            jobs=jobs,
        )
        with contextlib.suppress(Exception):
            self.record.largest_tables = checks_mod.largest_tables(self.restored)
        # The dump is no longer needed once restored: free the disk before the checks run.
        download.path.unlink(missing_ok=True)

    def _initialize_ahead(self, server_version: str | None) -> InitializedAhead | None:
        """A local target's initdb, run while the dump is listed and fetched, for the major the backup job
        recorded, or (`server_version` None) for the one major installed here, if there is only one. The
        dump's own header decides after the fetch: a wrong guess is removed, and costs only CPU."""
        target = self.config.target
        if target.kind not in ("local", "container"):
            return None
        try:
            if server_version is None:
                installed = pgtools.available_bindirs(target.pg_bindir)
                if len(installed) != 1:
                    return None
                major = next(iter(installed))
            else:
                major = pgtools.major_of(server_version)
            if target.kind == "local":
                bindir: Path | None = pgtools.bindir_for(major, target.pg_bindir)
            else:  # the container's server reads the folder: the host's initdb must be of the very same major
                bindir = pgtools.available_bindirs(target.pg_bindir).get(major) if os.geteuid() == 0 else None
        except (RestoreDrillError, OSError, ValueError):
            return None  # the normal path, after the fetch, says why in its own words
        return InitializedAhead(local_instance(target, bindir, self.record.run_id), self.database) if bindir else None

    def _check_identity(self, archived: str | None) -> None:
        """The archive must hold the configured database: another database's dump under this key is a defect."""
        expected = self.source.source_database or self.source.dump_name or self.database
        self.record.backup.database, self.record.backup.database_expected = archived, expected
        if archived != expected:
            raise BackupDefect(
                f"the dump holds database '{archived}', not '{expected}': another database's dump is stored under "
                f"this key (set logical.source_database if the source database has another name)"
            )

    @staticmethod
    def _version(tool: str) -> str:
        with contextlib.suppress(CouldNotVerify):
            return proc.run([tool, "--version"], timeout=15).stdout.strip()
        return "unknown"

    # ----- stage 2: checks, one test item each ---------------------------------------------------------
    def database_checks(self) -> dict[str, CheckFunction]:
        return {**checks_mod.GENERIC, "drift": self.drift, **checks_mod.configured_checks(self.db_config.checks)}

    def restore_outcome(self) -> CheckRecord:
        """A database came up, but pg_restore exiting non-zero means the restore itself failed."""
        record = super().restore_outcome()
        if self.restored is not None and self.restored.restore_returncode != 0:
            errors = self.restored.restore_errors
            quoted = "; ".join(errors[:3]) or self.restore_log_tail(3) or "no message"
            record = CheckRecord(
                name="restore",
                outcome="failed",
                detail=f"pg_restore exited {self.restored.restore_returncode} restoring {self.record.backup.id}: "
                f"{quoted}" + (f"; and {len(errors) - 3} more error(s)" if len(errors) > 3 else ""),
            )
            self.record.add_check(record)
        return record

    def restore_detail(self) -> str:
        backup = self.record.backup
        return (
            f"restored {backup.id} ({backup.size_bytes} bytes, taken {backup.taken_at}) into "
            f"PostgreSQL {self.record.target_info.server_version} in {format_duration(self.record.rto_s)}"
        )

    def restore_log_tail(self, lines: int = 40) -> str:
        return proc.redact("\n".join(self.restore_log.strip().splitlines()[-lines:]))

    def _timing(self, name: str) -> CheckRecord:
        detail = self.record.rpo_detail
        if name == "rpo_newest_age":
            if self.record.rpo_s is None:
                return self.not_run(name)
            age, allowed = self.record.rpo_s, self.objective.rpo
            return CheckRecord(
                name=name,
                outcome="passed" if age <= allowed else "failed",
                detail=f"newest dump is {format_duration(age)} old (RPO {format_duration(allowed)})"
                + ("" if age <= allowed else ": the backups are stale"),
            )
        if name == "rpo_largest_gap":
            if not detail:
                return self.not_run(name)
            gap = detail.get("largest_gap_s")
            if gap is None:
                return CheckRecord(
                    name=name,
                    outcome="passed" if detail.get("dumps_in_window") else "failed",
                    detail=f"{detail.get('dumps_in_window')} dump(s) in the "
                    f"{detail['retention_days']}-day window: no gap to measure",
                )
            allowed = self.objective.rpo
            ok = float(gap) <= allowed
            return CheckRecord(
                name=name,
                outcome="passed" if ok else "failed",
                detail=f"largest gap between consecutive dumps in the last {detail['retention_days']} "
                f"days is {format_duration(float(gap))}, {detail['gap_from']} to {detail['gap_to']} "
                f"(RPO {format_duration(allowed)})" + ("" if ok else ": dumps are missing"),
            )
        if name.startswith("policy_"):
            return self._policy_check(name)
        return self.rto_check("fetch + restore")

    def _policy_check(self, name: str) -> CheckRecord:
        """The store against the policy, from the listing made at discovery (and head_object for S3)."""
        if name in self.policy_not_applicable:
            raise NotApplicable(self.policy_not_applicable[name])
        if self.policy is None or self.store is None or not self.dumps:
            return self.not_run(name)
        listing = logical_policy.Listing(self.store, self.dumps, self.objects, self.listed_at)
        return logical_policy.check(name, self.policy, listing, self.source.retention_days, self.objective.rpo)

    # ----- stage 3: cleanup -------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        if self.ahead is not None:
            self.ahead.discard()
            self.ahead = None
        if self.instance is not None:
            self.instance.destroy()
        if self.fetch_dir is not None:
            remove_marked_folder(self.fetch_dir)
