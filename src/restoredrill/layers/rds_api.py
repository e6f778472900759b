"""AWS RDS through boto3: errors as one sentence, snapshot choice, restore window, janitor, settings audit.

moto accepts what AWS would reject (any RestoreTime, an existing identifier...): those rules are
enforced here, before any call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from restoredrill.config import RdsPolicy, RdsSource
from restoredrill.durations import parse_duration
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify, RestoreDrillError

TAG = "restoredrill"
RUN_TAG = "restoredrill-run-id"
EXPIRES_TAG = "restoredrill-expires-at"
FAILED_STATES = {
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
    "inaccessible-encryption-credentials",
    "restore-error",
}


def client(source: RdsSource, region: str | None = None) -> Any:
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=source.profile, region_name=region or source.region)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(f"AWS profile '{source.profile}' is not configured") from None
    return session.client(
        "rds",
        endpoint_url=source.endpoint_url,
        config=botocore.config.Config(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
        ),
    )


def explain(exc: Exception) -> RestoreDrillError:
    """One sentence for an AWS failure; AccessDenied names the permission the drill role lacks."""
    import botocore.exceptions as bex

    if isinstance(exc, RestoreDrillError):
        return exc
    if isinstance(exc, bex.NoCredentialsError):
        return CouldNotVerify("no AWS credentials found (set a profile, environment, role or OIDC)")
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError | bex.ReadTimeoutError):
        return CouldNotVerify(f"cannot reach the RDS API: {exc}")
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code, operation = error.get("Code", "Unknown"), getattr(exc, "operation_name", "?")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure"}:
            return CouldNotVerify(f"AWS denied rds:{operation} ({code}): grant rds:{operation} to the drill role")
        if code in {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException"}:
            return CouldNotVerify(f"AWS refused the credentials ({code}) for rds:{operation}")
        if code == "DBInstanceNotFound":
            return CouldNotVerify(f"rds:{operation}: {error.get('Message', 'instance not found')}")
        return CouldNotVerify(f"rds:{operation} failed ({code}): {error.get('Message', '')}".strip())
    if isinstance(exc, bex.BotoCoreError):
        return CouldNotVerify(f"AWS client error: {exc}")
    return CouldNotVerify(f"unexpected AWS error: {exc}")


def paginate(rds: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in rds.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def automated_backups(rds: Any, instance: str) -> list[dict[str, Any]]:
    """The instance's automated backups (each carries its restore window)."""
    operation, key = "describe_db_instance_automated_backups", "DBInstanceAutomatedBackups"
    return list(paginate(rds, operation, key, DBInstanceIdentifier=instance))


def _when(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SnapshotChoice:
    snapshot: dict[str, Any]
    note: str | None


def choose_snapshot(snapshots: list[dict[str, Any]], kind: str, source_id: str) -> SnapshotChoice:
    """The newest snapshot of the wanted kind. A newest one still being created falls back to the newest
    available one (with a note); a newest one that failed is a defect."""
    wanted = [s for s in snapshots if kind == "any" or s.get("SnapshotType") == kind]
    if not wanted:
        raise BackupDefect(f"no {'' if kind == 'any' else kind + ' '}snapshot of {source_id} exists")
    wanted.sort(key=lambda s: _when(s.get("SnapshotCreateTime")))
    newest = wanted[-1]
    status = newest.get("Status", "unknown")
    if status == "available":
        return SnapshotChoice(newest, None)
    if status == "creating":
        ready = [s for s in wanted if s.get("Status") == "available"]
        if ready:
            return SnapshotChoice(
                ready[-1],
                f"the newest snapshot {newest['DBSnapshotIdentifier']} is still being "
                f"created; drilled the newest available one",
            )
    raise BackupDefect(
        f"the newest snapshot {newest['DBSnapshotIdentifier']} of {source_id} is '{status}', "
        "not available: it cannot be restored"
    )


@dataclass(frozen=True)
class RestoreWindow:
    earliest: datetime
    latest: datetime

    def resolve(self, spec: str) -> datetime | None:
        """None for 'latest' (UseLatestRestorableTime), else a time that must fall inside the window."""
        if spec == "latest":
            return None
        try:
            moment = datetime.fromisoformat(spec.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            try:
                moment = self.latest - timedelta(seconds=parse_duration(spec))
            except ValueError:
                raise ConfigError(f"restore_time '{spec}' is not 'latest', an ISO time or a duration") from None
        if not self.earliest <= moment <= self.latest:
            raise BackupDefect(
                f"the restore time {moment.isoformat(timespec='seconds')} is outside the restore "
                f"window {self.earliest.isoformat(timespec='seconds')} .. "
                f"{self.latest.isoformat(timespec='seconds')}"
            )
        return moment


def restore_window(instance: dict[str, Any], automated: list[dict[str, Any]], now: datetime) -> RestoreWindow:
    latest = instance.get("LatestRestorableTime")
    if latest is None:
        raise BackupDefect(
            f"{instance['DBInstanceIdentifier']} has no LatestRestorableTime: automated backups "
            "are off, so there is no point in time to restore"
        )
    earliest_candidates = [
        _when(a.get("RestoreWindow", {}).get("EarliestTime")) for a in automated if a.get("RestoreWindow")
    ]
    retention = int(instance.get("BackupRetentionPeriod") or 0)
    fallback = max(_when(instance.get("InstanceCreateTime")), now - timedelta(days=retention))
    return RestoreWindow(min(earliest_candidates) if earliest_candidates else fallback, _when(latest))


def temporary_identifier(database: str, now: datetime) -> str:
    """restoredrill-<db>-<time>: letters, digits and hyphens, starting with a letter, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", database.lower()).strip("-") or "db"
    return f"restoredrill-{slug[:30]}-{now:%Y%m%d%H%M%S}"


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("TagList") or []}


def janitor(rds: Any, now: datetime) -> list[str]:
    """Delete drill instances whose expires-at passed. Nothing without the restoredrill tag AND a run id."""
    removed = []
    for instance in paginate(rds, "describe_db_instances", "DBInstances"):
        tags = tags_of(instance)
        if tags.get(TAG) != "true" or not tags.get(RUN_TAG) or not tags.get(EXPIRES_TAG):
            continue
        try:
            expires = datetime.fromisoformat(tags[EXPIRES_TAG].replace("Z", "+00:00"))
        except ValueError:
            continue
        if expires <= now and instance.get("DBInstanceStatus") != "deleting":
            if instance.get("DeletionProtection"):
                rds.modify_db_instance(
                    DBInstanceIdentifier=instance["DBInstanceIdentifier"],
                    DeletionProtection=False,
                    ApplyImmediately=True,
                )
            rds.delete_db_instance(
                DBInstanceIdentifier=instance["DBInstanceIdentifier"],
                SkipFinalSnapshot=True,
                DeleteAutomatedBackups=True,
            )
            removed.append(instance["DBInstanceIdentifier"])
    return removed


def janitor_accounts(sources: Iterable[RdsSource], now: datetime) -> tuple[list[str], list[str]]:
    """The janitor once per AWS account reached (region, endpoint, profile) of the configured RDS layers.

    Returns what was deleted and, per account it could not sweep, one sentence: a janitor never stops a run.
    """
    removed: list[str] = []
    problems: list[str] = []
    seen: set[tuple[str | None, str | None, str | None]] = set()
    for source in sources:
        account = (source.region, source.endpoint_url, source.profile)
        if account in seen:
            continue
        seen.add(account)
        try:
            removed += janitor(client(source), now)
        except Exception as exc:
            problems.append(f"the RDS janitor could not run for region {source.region or 'default'}: {explain(exc)}")
    return removed, problems


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


def audit(instance: dict[str, Any], policy: RdsPolicy) -> list[Finding]:
    """The source's backup settings against the strategy, one finding per setting."""
    found = []
    retention = int(instance.get("BackupRetentionPeriod") or 0)
    found.append(
        Finding(
            "backup_retention",
            retention >= policy.retention_days,
            f"automated backups kept {retention} day(s) (policy {policy.retention_days})",
        )
    )
    encrypted, key = bool(instance.get("StorageEncrypted")), instance.get("KmsKeyId")
    found.append(
        Finding(
            "storage_encrypted_kms",
            encrypted and bool(key),
            f"storage encrypted with KMS key {key}"
            if encrypted and key
            else "storage is NOT encrypted with a KMS key (snapshots and backups are readable in clear)",
        )
    )
    found.append(
        Finding(
            "copy_tags_to_snapshot",
            bool(instance.get("CopyTagsToSnapshot")),
            f"CopyTagsToSnapshot is {bool(instance.get('CopyTagsToSnapshot'))}",
        )
    )
    if policy.production:
        found.append(
            Finding(
                "deletion_protection",
                bool(instance.get("DeletionProtection")),
                f"DeletionProtection is {bool(instance.get('DeletionProtection'))} (required in production)",
            )
        )
        found.append(
            Finding(
                "multi_az",
                bool(instance.get("MultiAZ")),
                f"MultiAZ is {bool(instance.get('MultiAZ'))} (required in production)",
            )
        )
    if policy.dr_region:
        replicas = [
            r.get("DBInstanceAutomatedBackupsArn", "")
            for r in instance.get("DBInstanceAutomatedBackupsReplications") or []
        ]
        in_dr = [arn for arn in replicas if f":{policy.dr_region}:" in arn]
        found.append(
            Finding(
                "cross_region_backups",
                bool(in_dr),
                f"automated backups replicated to {policy.dr_region}: {in_dr[0]}"
                if in_dr
                else f"no automated backup replication to the DR region {policy.dr_region}",
            )
        )
    return found
