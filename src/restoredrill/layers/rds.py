"""The RDS drill: the newest snapshot (or a point in time) restored into a temporary instance that is
always deleted, checked like any restored database, plus an audit of the source's backup settings.

RTO = the restore call until the instance accepts connections; RPO = now minus LatestRestorableTime.
Instances are named restoredrill-<db>-<time> and tagged (restoredrill, run id, expires-at): a drill that
dies leaves an instance the janitor of a later run deletes once it expired.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from restoredrill import checks as checks_mod
from restoredrill import cost, pgtools, proc
from restoredrill.checks import Restored
from restoredrill.config import DrillConfig, RdsSource
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, CouldNotVerify
from restoredrill.evidence import CheckRecord, iso, utcnow
from restoredrill.layers import rds_api
from restoredrill.layers.base import CheckFunction, LayerDrill, Log
from restoredrill.operate import progress
from restoredrill.targets.connection import Connection
from restoredrill.waiting import wait_until


class RdsDrill(LayerDrill):
    layer = "rds"

    def __init__(self, config: DrillConfig, database: str, run_id: str, log: Log = lambda _m: None) -> None:
        super().__init__(config, database, run_id, log)
        source = self.db_config.rds
        if source is None:
            raise ValueError(f"{database} has no rds layer")
        self.source: RdsSource = source
        self.record.target = "rds"
        self.record.target_info.kind = "rds"
        self.record.recovery_target = "snapshot" if source.restore_from == "snapshot" else source.restore_time
        self.rds: Any = None
        self.source_described: dict[str, Any] | None = None  # what RDS says about the source instance
        self.identifier: str | None = None
        self.instance: RdsInstance | None = None
        self.findings: dict[str, rds_api.Finding] = {}
        names = [f.name for f in rds_api.audit({}, config.rds_policy(database))]
        self.timing_checks = ("rto", "rpo_latest_restorable", *names)

    @property
    def dbname(self) -> str:
        return self.source.dbname or self.database

    # ----- stage 1 -----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self._discover_and_restore()
        except (CouldNotVerify, BackupDefect):
            raise
        except Exception as exc:  # botocore errors become one sentence
            raise rds_api.explain(exc) from None

    def _discover_and_restore(self) -> None:
        source = self.source
        self.rds = rds = rds_api.client(source)
        now = utcnow()
        described = rds.describe_db_instances(DBInstanceIdentifier=source.source_instance)["DBInstances"]
        self.source_described = instance = described[0]
        self.findings = {f.name: f for f in rds_api.audit(instance, self.config.rds_policy(self.database))}
        latest = instance.get("LatestRestorableTime")
        if latest is not None:
            self.record.rpo_s = round(max(0.0, (now - latest).total_seconds()), 1)
        self.record.rpo_detail = {
            "latest_restorable_time": iso(latest),
            "source": instance.get("DBInstanceArn"),
            "backup_retention_days": instance.get("BackupRetentionPeriod"),
        }
        backup = self.record.backup
        backup.server_version = instance.get("EngineVersion")
        restore_args: dict[str, Any]
        snapshots = list(
            rds_api.paginate(rds, "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=source.source_instance)
        )
        self.record.storage = cost.rds_storage(snapshots, self.config.cost)
        if source.restore_from == "snapshot":
            choice = rds_api.choose_snapshot(snapshots, source.snapshot_type, source.source_instance)
            if choice.note:
                self.record.notes.append(choice.note)
            snapshot = choice.snapshot
            backup.id, backup.taken_at = snapshot["DBSnapshotIdentifier"], iso(snapshot.get("SnapshotCreateTime"))
            backup.location = snapshot.get("DBSnapshotArn") or f"rds snapshot {backup.id}"
            backup.size_bytes = int(snapshot.get("AllocatedStorage") or 0) * 1024**3 or None
            restore_args = {"DBSnapshotIdentifier": snapshot["DBSnapshotIdentifier"]}
        else:
            automated = rds_api.automated_backups(rds, source.source_instance)
            window = rds_api.restore_window(instance, automated, now)
            moment = window.resolve(source.restore_time)
            self.record.recovery_target = iso(moment) if moment else "latest"
            backup.id = f"{source.source_instance} at {self.record.recovery_target}"
            backup.taken_at = iso(moment or window.latest)
            backup.location = instance.get("DBInstanceArn")
            restore_args = {
                "SourceDBInstanceIdentifier": source.source_instance,
                **({"RestoreTime": moment} if moment else {"UseLatestRestorableTime": True}),
            }
        identifier = rds_api.temporary_identifier(self.database, now)
        self._refuse_identifier(identifier)
        started = time.monotonic()
        self.identifier = identifier  # from here on, cleanup deletes it whatever happens
        self.instance = RdsInstance(rds, identifier, self.record.run_id)
        common = self._restore_parameters(now)
        self.log(f"{self.database}: restoring {backup.id} into temporary RDS instance {identifier}")
        if source.restore_from == "snapshot":
            rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=identifier, **restore_args, **common)
        else:
            rds.restore_db_instance_to_point_in_time(TargetDBInstanceIdentifier=identifier, **restore_args, **common)
        polls = progress.current().stage(
            f"{self.database}/rds restore into {identifier}",
            unit="status",
            probe=lambda: str(self.record.target_info.instance.get("status") or "requested"),
        )
        with polls:
            connection = self.instance.connection = self._wait_until_usable(identifier, started)
        self.record.stages.restore_s = self.record.rto_s = round(time.monotonic() - started, 3)
        bindir = pgtools.bindir_for(max(pgtools.available_bindirs(self.config.target.pg_bindir)))
        self.restored = Restored(
            connection=connection,
            dbname=self.dbname,
            bindir=bindir,
            listing=None,
            manifest=None,
            taken_at=datetime.fromisoformat((backup.taken_at or iso(now) or "").replace("Z", "+00:00")),
            rpo_s=self.objective.rpo,
            restore_returncode=0,
            restore_errors=[],
            check_timeout=self.config.target.check_timeout,
            jobs=self.config.target.workers,
        )
        try:
            self.record.largest_tables = checks_mod.largest_tables(self.restored)
            with connection.connect(self.dbname) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                self.record.target_info.server_version = str(row[0]) if row else None
        except psycopg.Error:
            pass

    def _refuse_identifier(self, identifier: str) -> None:
        """AWS would reject some of these and moto accepts them all: never the source, never an existing one."""
        if identifier == self.source.source_instance:
            raise CouldNotVerify(f"refusing to restore over the source instance {identifier}")
        try:
            self.rds.describe_db_instances(DBInstanceIdentifier=identifier)
        except Exception as exc:
            if "DBInstanceNotFound" in str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")):
                return
            raise
        raise CouldNotVerify(f"an instance named {identifier} already exists: refusing to touch it")

    def _restore_parameters(self, now: datetime) -> dict[str, Any]:
        expires = now + timedelta(seconds=self.source.ttl)
        params: dict[str, Any] = {
            "DBInstanceClass": self.source.instance_class,
            "PubliclyAccessible": False,
            "MultiAZ": False,
            "DeletionProtection": False,
            "AutoMinorVersionUpgrade": False,
            "CopyTagsToSnapshot": False,
            "Tags": [
                {"Key": rds_api.TAG, "Value": "true"},
                {"Key": rds_api.RUN_TAG, "Value": self.record.run_id},
                {"Key": rds_api.EXPIRES_TAG, "Value": iso(expires) or ""},
                {"Key": "restoredrill-database", "Value": self.database},
            ],
        }
        if self.source.subnet_group:
            params["DBSubnetGroupName"] = self.source.subnet_group
        if self.source.security_groups:
            params["VpcSecurityGroupIds"] = list(self.source.security_groups)
        return params

    def _enforce_disposable(self, identifier: str, described: dict[str, Any]) -> dict[str, Any]:
        """A restore may inherit deletion protection, public access or Multi-AZ from its source (moto does):
        switch them off before anything else, so the instance stays private, cheap and deletable."""
        if described.get("DeletionProtection") or described.get("PubliclyAccessible") or described.get("MultiAZ"):
            self.rds.modify_db_instance(
                DBInstanceIdentifier=identifier,
                DeletionProtection=False,
                PubliclyAccessible=False,
                MultiAZ=False,
                ApplyImmediately=True,
            )
            self.record.notes.append(
                f"{identifier} inherited deletion protection, public access or Multi-AZ: switched off"
            )
            described = self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
            self.record.target_info.instance = read_back(described)
        return described

    def _connection(self, described: dict[str, Any]) -> Connection:
        source = self.source
        password = os.environ.get(source.password_env, "") if source.password_env else ""
        if source.connect_via:
            params = conninfo_to_dict(source.connect_via)
            host, port = str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))
            user, sslmode = str(params.get("user", source.user)), str(params.get("sslmode", "prefer"))
        else:
            endpoint = described.get("Endpoint") or {}
            host, port, user, sslmode = (
                endpoint.get("Address", ""),
                int(endpoint.get("Port", 5432)),
                source.user,
                "require",
            )
        if source.iam_auth:
            password = self.rds.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
        proc.register_secret(password)
        return Connection(host, port, user, password, sslmode)

    def _wait_until_usable(self, identifier: str, started: float) -> Connection:
        status, last_error, next_log = "unknown", "", 0.0

        def usable() -> Connection | None:
            nonlocal status, last_error, next_log
            described = self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
            status = described.get("DBInstanceStatus", "unknown")
            self.record.target_info.instance = read_back(described)
            if status in rds_api.FAILED_STATES:
                raise BackupDefect(f"the restored instance {identifier} ended in state '{status}'")
            if status == "available":
                described = self._enforce_disposable(identifier, described)
                connection = self._connection(described)
                try:
                    with connection.connect(self.dbname) as conn:
                        conn.execute("SELECT 1")
                    return connection
                except psycopg.OperationalError as exc:
                    last_error = proc.redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else "refused"
            elapsed = time.monotonic() - started
            if time.monotonic() >= next_log:
                self.log(f"{self.database}: {identifier} is {status} after {format_duration(elapsed)}")
                next_log = time.monotonic() + 60
            return None

        return wait_until(
            usable,
            timeout=started + self.source.available_timeout - time.monotonic(),  # RTO counts from the restore call
            interval=self.source.poll_interval or 0.1,  # a configured 0 never spins
            timed_out=lambda: (
                f"the restored instance {identifier} never became usable within "
                f"{format_duration(self.source.available_timeout)} (status {status}"
                + (f"; {last_error}" if last_error else "")
                + ")"
            ),
        )

    # ----- stage 2 -----------------------------------------------------------------------------------
    def database_checks(self) -> dict[str, CheckFunction]:
        return {
            "drift": self.drift,
            "amcheck": checks_mod.amcheck,
            "sequences": checks_mod.sequences,
            **checks_mod.configured_checks(self.db_config.checks),
        }

    def restore_detail(self) -> str:
        return (
            f"restored {self.record.backup.id} into temporary instance {self.identifier} "
            f"({self.source.instance_class}), usable after {format_duration(self.record.rto_s)}"
        )

    def _timing(self, name: str) -> CheckRecord:
        if name == "rto":
            return self.rto_check("restore call until the instance accepts connections")
        if self.source_described is None:
            return self.not_run(name)
        if name == "rpo_latest_restorable":
            if self.record.rpo_s is None:
                return CheckRecord(
                    name=name,
                    outcome="failed",
                    detail="no LatestRestorableTime: point-in-time recovery is not possible",
                )
            age, allowed = self.record.rpo_s, self.objective.rpo
            return CheckRecord(
                name=name,
                outcome="passed" if age <= allowed else "failed",
                detail=f"LatestRestorableTime is {format_duration(age)} ago (RPO "
                f"{format_duration(allowed)})" + ("" if age <= allowed else ": backups lag behind"),
            )
        finding = self.findings.get(name)
        if finding is None:
            return self.not_run(name)
        return CheckRecord(name=name, outcome="passed" if finding.ok else "failed", detail=finding.detail)

    # ----- stage 3 -----------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        """Delete the temporary instance whatever happened, but only one that carries this run's tag."""
        if self.instance is None:
            return
        self.instance.destroy()
        self.record.notes.extend(self.instance.notes)
        if self.instance.cleanup_error is not None:
            self._cleanup_failed(self.instance.cleanup_error)

    def _cleanup_failed(self, error: Exception) -> None:
        self.record.add_check(
            CheckRecord(name="cleanup", outcome="error", detail=f"the temporary instance may be left behind: {error}")
        )


class RdsInstance:
    """The temporary instance as the drill's Target (targets/protocol.py): reached through `connection` once
    usable; `destroy` deletes it, but only one that carries this run's tag, and keeps what it did in
    `notes` and `cleanup_error` for the drill's record."""

    def __init__(self, rds: Any, identifier: str, run_id: str) -> None:
        self.rds, self.identifier, self.run_id = rds, identifier, run_id
        self.connection: Connection | None = None
        self.notes: list[str] = []
        self.cleanup_error: Exception | None = None
        self.destroyed = False

    def destroy(self) -> None:
        """Delete it whatever happened; safe to call twice (the second call does nothing)."""
        if self.destroyed:
            return
        self.destroyed = True
        self._delete()

    def _delete(self) -> None:
        try:
            described = self.rds.describe_db_instances(DBInstanceIdentifier=self.identifier)["DBInstances"][0]
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "DBInstanceNotFound":
                self.notes.append(f"temporary instance {self.identifier} was never created")
                return
            self.cleanup_error = rds_api.explain(exc)
            return
        tags = rds_api.tags_of(described)
        if tags.get(rds_api.RUN_TAG) != self.run_id:
            self.cleanup_error = CouldNotVerify(f"{self.identifier} does not carry this run's tag: not deleted")
            return
        try:
            if described.get("DeletionProtection"):
                self.rds.modify_db_instance(
                    DBInstanceIdentifier=self.identifier, DeletionProtection=False, ApplyImmediately=True
                )
            self.rds.delete_db_instance(
                DBInstanceIdentifier=self.identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            )
        except Exception as exc:
            self.cleanup_error = rds_api.explain(exc)
            return
        self.notes.append(f"deleted temporary instance {self.identifier}")


def read_back(described: dict[str, Any]) -> dict[str, object]:
    """What RDS says about the temporary instance: the evidence that it was private and disposable."""
    return {
        "identifier": described.get("DBInstanceIdentifier"),
        "class": described.get("DBInstanceClass"),
        "status": described.get("DBInstanceStatus"),
        "multi_az": described.get("MultiAZ"),
        "publicly_accessible": described.get("PubliclyAccessible"),
        "deletion_protection": described.get("DeletionProtection"),
        "subnet_group": (described.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        "security_groups": [g.get("VpcSecurityGroupId") for g in described.get("VpcSecurityGroups") or []],
        "tags": rds_api.tags_of(described),
    }
