"""Why a drill did not pass, in the five categories auditors and the on-call engineer sort by, and what
to do about it. Shared by the HTML report and the Allure categories.
"""

from __future__ import annotations

import re
from typing import Literal

from restoredrill.evidence import CheckRecord, DrillRecord

Category = Literal["backup corrupt", "stale backup", "restore failed", "check failed", "could not verify"]
CATEGORIES: tuple[Category, ...] = (
    "backup corrupt",
    "stale backup",
    "restore failed",
    "check failed",
    "could not verify",
)
_PRIORITY: tuple[Category, ...] = ("backup corrupt", "restore failed", "stale backup", "check failed")

_CORRUPT = re.compile(
    r"(?i)checksum|truncated|padded|corrupt|table of contents|not a pg_dump|unreadable|invalid|damaged|altered"
)
_MISSING = re.compile(r"(?i)no dump|no backup|not found|does not exist|disappeared|stale|missing")
_NO_BACKUP = re.compile(r"(?i)no dump|no backup|not found|does not exist")

_CHECK_HINTS = {
    "rto": "The restore took longer than the RTO: restore with more parallel jobs (target.jobs), on faster "
    "storage or a larger target, or agree a realistic RTO with the service owner.",
    "rpo_newest_age": "No backup was taken within the RPO: check the backup job's schedule, last log and "
    "credentials, then run it now.",
    "rpo_largest_gap": "Backups are missing inside the retention window: look for failed runs of the backup job "
    "on the dates named and fix its schedule or alerting.",
    "restore_errors": "The restore printed errors: read the restore log, fix the cause (missing roles, "
    "extensions or versions) and take a backup that restores cleanly.",
    "toc_tables": "Tables of the backup are missing after the restore: read the restore log; the restore "
    "skipped or failed objects.",
    "manifest_row_counts": "The restored data differs from what the backup job counted: the dump is incomplete "
    "or the wrong one; compare it with the source and take a new backup.",
    "manifest_structure": "The restored structure differs from the source at backup time: an object failed to "
    "restore or was not dumped; compare the named objects and take a new backup.",
    "matviews_populated": "Materialized views restored empty: refresh them after restore or fix how they are dumped.",
    "amcheck": "Corruption was found in the restored database: check the source with pg_amcheck and keep "
    "older backups until a clean one is proven.",
    "sequences": "A sequence is behind the values its column holds: new inserts would collide; fix the "
    "sequences in the backup process (or setval after restore) and drill again.",
    "min_rows": "Fewer rows than the configured minimum: the backup may be of the wrong database or incomplete.",
    "freshness": "The newest data in the backup is older than allowed: the backup may come from a lagging "
    "replica or an old snapshot.",
    "sql": "A custom check returned an unexpected value: read its SQL and expected value with the check's owner.",
    "rpo_newest_wal": "WAL archiving has stalled: check archive_command / archive-push errors on the primary "
    "(pg_stat_archiver) and the repository's free space.",
    "wal_continuity": "WAL segments are missing from the archive, so point-in-time recovery across the gap is "
    "impossible: take a new full backup now and find why archiving skipped segments.",
    "pgbackrest_verify": "pgbackrest verify found damaged files in the repository: take a new full backup, keep the "
    "damaged set for investigation, and check the repository's storage.",
    "recovery": "Recovery did not reach its target: WAL needed for it is missing or unreadable; check the archive "
    "and take a new backup.",
    "replay_proof": "The restored cluster does not hold the data it should at its recovery point: WAL was not "
    "replayed far enough; check the archive for gaps and late archiving.",
    "ledger_pitr": "Point-in-time recovery restored the wrong set of committed rows: the recovery target or the WAL "
    "archive is wrong; do not rely on PITR until this passes.",
    "archive_mode_off": "A restored copy could archive WAL into the production repository: the restore must run "
    "with --archive-mode=off.",
}


def check_category(check: CheckRecord) -> Category | None:
    """The category of one check that did not pass (None when it passed)."""
    if check.outcome in ("passed", "not_applicable"):  # proves nothing either way: no category
        return None
    if check.outcome in ("error", "not_run"):
        return "could not verify"
    name = check.name.split(":", 1)[0]
    if name.startswith("rpo"):
        return "stale backup"
    if name == "restore":
        if _CORRUPT.search(check.detail):
            return "backup corrupt"
        return "stale backup" if _MISSING.search(check.detail) else "restore failed"
    if name in {"restore_errors", "recovery", "replay_proof"} or "restore" in name:
        return "restore failed"
    if name in {"pgbackrest_verify", "wal_continuity"} or "checksum" in name or "verify" in name:
        return "backup corrupt"
    return "check failed"


def drill_category(record: DrillRecord) -> Category | None:
    """The one category that explains a drill that did not pass."""
    if record.verdict in ("passed", "partial"):  # partial: what ran passed; the headline names what did not
        return None
    if record.verdict == "could_not_verify":
        return "could not verify"
    found = {check_category(c) for c in record.checks if c.outcome == "failed"}
    for category in _PRIORITY:
        if category in found:
            return category
    reason = record.reason or ""
    if _CORRUPT.search(reason):
        return "backup corrupt"
    return "stale backup" if _MISSING.search(reason) else "restore failed"


def _could_not_verify_hint(text: str) -> str:
    lowered = text.lower()
    if any(word in lowered for word in ("credential", "denied", "refused", "accessdenied", "forbidden")):
        return (
            "Give the drill read access to the backups (list and get on the prefix, decrypt on the key) and "
            "check the identity it runs as; nothing was verified."
        )
    if "cannot reach" in lowered or "endpoint" in lowered or "connect" in lowered:
        return "The backup store or target was unreachable from the drill: check endpoint, network and DNS."
    if "not installed" in lowered or "binaries" in lowered:
        return "Install the missing tools on the machine that runs the drill (scripts/install-system.sh)."
    if "did not finish within" in lowered or "timeout" in lowered:
        return "A step hit its timeout: raise the timeout in [target] or give the drill more resources."
    if "did not start" in lowered or "accept connections" in lowered:
        return "The throwaway server never came up: read its log, and check disk space and the run_as user."
    if "interrupted" in lowered:
        return "The drill was interrupted before it finished: run it again."
    return "Nothing was verified: fix what stopped the drill and run it again; until then the backup is unproven."


def check_hint(check: CheckRecord) -> str:
    category = check_category(check)
    if category == "could not verify":
        return _could_not_verify_hint(check.detail)
    name = check.name.split(":", 1)[0]
    if name == "restore" and category == "backup corrupt":
        return hint_for("backup corrupt", check.detail)
    if name == "restore":
        return hint_for(category or "restore failed", check.detail)
    return _CHECK_HINTS.get(name) or hint_for(category or "check failed", check.detail)


def hint_for(category: Category, text: str = "") -> str:
    if category == "backup corrupt":
        return (
            "Take a fresh backup now and drill it; find where this one was damaged (upload, storage, bit rot) "
            "and drill the previous backup, which may be the newest good one."
        )
    if category == "stale backup":
        if _NO_BACKUP.search(text):
            return (
                "No backup was found where the configuration points: check the backup job's destination and "
                "the drill's source setting."
            )
        return _CHECK_HINTS["rpo_newest_age"]
    if category == "restore failed":
        return (
            "The backup exists but does not restore: read the restore log, fix the cause (versions, roles, "
            "extensions), and take a backup that restores."
        )
    if category == "could not verify":
        return _could_not_verify_hint(text)
    return "Read the check's detail and fix the cause before relying on this backup."


def drill_hint(record: DrillRecord) -> str | None:
    category = drill_category(record)
    if category is None:
        return None
    for check in record.checks:
        if check.outcome != "passed" and check_category(check) == category:
            return check_hint(check)
    return hint_for(category, record.reason or "")
