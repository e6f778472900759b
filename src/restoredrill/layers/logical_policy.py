"""Policy checks of the dump store, all read-only: the daily cadence, pruning, encryption, bucket protection.

Each is one `policy_<name>` check of the logical drill (README, "Backup policy"). They read the listing the
drill already made and, for S3, head_object and the bucket's own settings: nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from restoredrill.config import LogicalPolicy
from restoredrill.durations import format_duration
from restoredrill.errors import RestoreDrillError
from restoredrill.evidence import CheckRecord, iso
from restoredrill.layers.logical_keys import DumpKey
from restoredrill.stores import S3Store, Store, StoredObject

SHOWN = 5  # names quoted in a finding; the count says how many more


@dataclass(frozen=True)
class Plan:
    """The policy checks the policy asks for, and why those that cannot apply to this store do not (each is
    recorded as a not_applicable check, never as a pass)."""

    names: tuple[str, ...]
    not_applicable: dict[str, str]


S3_ONLY = ("policy_encryption", "policy_bucket_versioning", "policy_object_lock")


def plan(policy: LogicalPolicy | None, source: str) -> Plan:
    """Which checks run: those the policy asks for; the S3-only ones are not applicable to a local folder."""
    if policy is None:
        return Plan((), {})
    wanted = {
        "policy_daily_dumps": policy.daily_dumps,
        "policy_pruning": policy.pruning,
        "policy_encryption": policy.encryption or policy.kms_key_id is not None,
        "policy_bucket_versioning": policy.versioning,
        "policy_object_lock": policy.object_lock,
    }
    names = tuple(name for name, on in wanted.items() if on)
    if source.startswith("s3://"):
        return Plan(names, {})
    folder = f"{source} is a local folder, which has no server-side encryption, versioning or object lock to read"
    return Plan(names, {name: folder for name in names if name in S3_ONLY})


@dataclass(frozen=True)
class Listing:
    """What the drill's discovery saw: the store, this database's dumps, every object under the prefix, when."""

    store: Store
    dumps: list[DumpKey]
    objects: list[StoredObject]
    at: datetime


def check(name: str, policy: LogicalPolicy, listing: Listing, retention_days: int, rpo_s: float) -> CheckRecord:
    """One policy check of the logical drill. A read S3 refused is could-not-verify (an error), never a pass."""
    try:
        if name == "policy_daily_dumps":
            return daily_dumps(listing.dumps, listing.at, retention_days, rpo_s)
        if name == "policy_pruning":
            return pruning(listing.dumps, listing.at, retention_days, policy.grace_days)
        store = listing.store
        assert isinstance(store, S3Store)  # plan() lists the S3-only checks for S3 sources only
        if name == "policy_encryption":
            listed = {o.key for o in listing.objects}
            keys = [k for d in listing.dumps for k in (d.key, d.manifest_key) if k in listed]
            return encryption(store, keys, policy.kms_key_id)
        if name == "policy_bucket_versioning":
            return versioning(store)
        return object_lock(store)
    except RestoreDrillError as exc:
        return CheckRecord(name=name, outcome="error", detail=f"could not verify: {exc}")


def _quoted(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def daily_dumps(dumps: list[DumpKey], now: datetime, retention_days: int, rpo_s: float) -> CheckRecord:
    """One dump on every UTC day of the retention window, naming each day that has none.

    The window runs from the first whole day after `now - retention_days` (or the first dump's day, when the
    history is younger) to the day `now - RPO` falls on: today's dump is not due before the RPO says so.
    The RPO's largest gap (rpo_largest_gap) measures the same dumps in hours; this names the calendar days.
    """
    name = "policy_daily_dumps"
    last_due = (now - timedelta(seconds=rpo_s)).date()
    start = (now - timedelta(days=retention_days)).date() + timedelta(days=1)
    days_with = {d.taken_at.date() for d in dumps}
    first = min(days_with, default=last_due)
    younger = first > start
    start = max(start, first)
    expected = [start + timedelta(days=i) for i in range((last_due - start).days + 1)]
    missing = [day for day in expected if day not in days_with]
    span = f"{start} .. {last_due}" if expected else "no day is due yet"
    history = f" (history starts {first}, inside the {retention_days}-day window)" if younger else ""
    if not dumps:
        return CheckRecord(name=name, outcome="failed", detail="no dump at all in the retention window")
    if missing:
        return CheckRecord(
            name=name,
            outcome="failed",
            detail=f"no dump on {len(missing)} of {len(expected)} day(s) {span}{history}: missing "
            f"{_quoted([str(d) for d in missing])}: the backup job did not run or did not upload",
        )
    return CheckRecord(
        name=name,
        outcome="passed",
        detail=f"a dump on every one of the {len(expected)} day(s) {span}{history}",
    )


def pruning(dumps: list[DumpKey], now: datetime, retention_days: int, grace_days: int) -> CheckRecord:
    """No dump older than the window plus its grace: a store that keeps everything has a broken prune."""
    limit = now - timedelta(days=retention_days + grace_days)
    stale = [d for d in dumps if d.taken_at < limit]
    oldest = dumps[0] if dumps else None
    allowed = f"{retention_days}-day retention + {grace_days} day(s) grace"
    if stale:
        return CheckRecord(
            name="policy_pruning",
            outcome="failed",
            detail=f"{len(stale)} dump(s) older than {allowed} (before {iso(limit)}): the oldest is "
            f"{stale[0].key}, {format_duration((now - stale[0].taken_at).total_seconds())} old: pruning "
            "does not run or fails",
        )
    age = (
        f"the oldest, {oldest.key}, is {format_duration((now - oldest.taken_at).total_seconds())} old" if oldest else ""
    )
    return CheckRecord(
        name="policy_pruning", outcome="passed", detail=f"no dump older than {allowed}" + (f": {age}" if age else "")
    )


def encryption(store: S3Store, keys: list[str], kms_key_id: str | None) -> CheckRecord:
    """head_object on every object of the database: server-side encrypted, with the configured KMS key if any."""
    name = "policy_encryption"
    clear, wrong_key, algorithms = [], [], set()
    for key in keys:
        found = store.encryption(key)
        if found.algorithm is None:
            clear.append(key)
            continue
        algorithms.add(found.algorithm)
        if kms_key_id is not None and not _same_key(found.kms_key_id, kms_key_id):
            wrong_key.append(f"{key} ({found.algorithm}, key {found.kms_key_id or 'none'})")
    problems = []
    if clear:
        problems.append(f"{len(clear)} of {len(keys)} object(s) have NO server-side encryption: {_quoted(clear)}")
    if wrong_key:
        problems.append(
            f"{len(wrong_key)} object(s) are not encrypted with the KMS key {kms_key_id}: {_quoted(wrong_key)}"
        )
    if not keys:
        return CheckRecord(name=name, outcome="error", detail="no object of this database to read: nothing proven")
    if problems:
        return CheckRecord(name=name, outcome="failed", detail="; ".join(problems))
    with_key = f" with the KMS key {kms_key_id}" if kms_key_id else ""
    return CheckRecord(
        name=name,
        outcome="passed",
        detail=f"all {len(keys)} object(s) are server-side encrypted ({', '.join(sorted(algorithms))}){with_key}, "
        "read with head_object",
    )


def _same_key(found: str | None, wanted: str) -> bool:
    """S3 reports the key's ARN; a policy may name the key id, its ARN, or an alias ARN as written."""
    return found is not None and (found == wanted or found.endswith(f"/{wanted}") or found.endswith(f":{wanted}"))


def versioning(store: S3Store) -> CheckRecord:
    state = store.protection().versioning
    ok = state == "Enabled"
    return CheckRecord(
        name="policy_bucket_versioning",
        outcome="passed" if ok else "failed",
        detail=f"versioning of s3://{store.bucket} is {state}"
        + ("" if ok else ": a deleted or overwritten dump cannot be recovered (the policy requires versioning)"),
    )


def object_lock(store: S3Store) -> CheckRecord:
    protection = store.protection()
    ok = protection.object_lock
    rule = f", default retention {protection.lock_rule}" if protection.lock_rule else ", no default retention rule"
    return CheckRecord(
        name="policy_object_lock",
        outcome="passed" if ok else "failed",
        detail=f"object lock of s3://{store.bucket} is enabled{rule}"
        if ok
        else f"object lock of s3://{store.bucket} is NOT enabled: dumps can be deleted before their retention "
        "(the policy requires object lock)",
    )
