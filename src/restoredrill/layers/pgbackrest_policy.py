"""Policy checks of a pgBackRest repository, all read-only: retention settings, backup ages, cipher, archiving.

Each is one `policy_<name>` check of the `latest` pgBackRest drill (README, "Backup policy"). Retention is a
setting of the backup host, not of the repository: it is read from the stanza's config file (the user's
own, never rewritten), the drill's environment and its `options`, the way pgBackRest itself resolves it.
Ages and the cipher come from `pgbackrest info`; archive health from the source's pg_stat_archiver through
a read-only connection.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import psycopg

from restoredrill import cost, proc
from restoredrill.config import CostPrices, PgBackRestPolicy, PgBackRestSource
from restoredrill.durations import format_duration
from restoredrill.errors import ConfigError, RestoreDrillError
from restoredrill.evidence import CheckRecord, StorageCost, iso, load_records, utcnow
from restoredrill.layers.pgbackrest_repo import StanzaInfo

# The only settings read: a config file also holds the cipher passphrase, which is never looked at.
RETENTION = (
    "repo1-retention-full",
    "repo1-retention-full-type",
    "repo1-retention-diff",
    "repo1-retention-archive",
    "repo1-retention-archive-type",
    "repo1-type",
)
DEFAULT_CONFIGS = (Path("/etc/pgbackrest/pgbackrest.conf"), Path("/etc/pgbackrest.conf"))


def plan(policy: PgBackRestPolicy | None) -> tuple[str, ...]:
    """The policy checks the `latest` drill runs: those the policy asks for."""
    if policy is None:
        return ()
    wanted = {
        "policy_retention": True,
        "policy_full_age": policy.full_max_age is not None,
        "policy_diff_age": policy.diff_max_age is not None,
        "policy_encryption": policy.encryption,
        "policy_archive_health": policy.source_dsn_env is not None,
    }
    return tuple(name for name, on in wanted.items() if on)


def read_settings(
    config: Path | None, stanza: str, options: list[str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """The retention and repository-type settings pgBackRest would use for `expire`, and where they came from.

    Precedence as pgBackRest's: [global] < [global:backup] < [stanza] < [stanza:backup], then PGBACKREST_*
    environment variables, then command-line options. A file that cannot be read is a ConfigError."""
    environ = os.environ if environ is None else environ
    path: Path | None = config
    if path is None and environ.get("PGBACKREST_CONFIG"):
        path = Path(environ["PGBACKREST_CONFIG"])
    if path is None:
        path = next((p for p in DEFAULT_CONFIGS if p.exists()), None)
    found: dict[str, str] = {}
    if path is not None:
        parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
        try:
            parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(
                f"the pgBackRest config {path} cannot be read for its retention settings: {exc}"
            ) from None
        for section in ("global", "global:backup", "global:expire", stanza, f"{stanza}:backup", f"{stanza}:expire"):
            if parser.has_section(section):
                found.update({k: v.strip() for k, v in parser.items(section) if k in RETENTION})
    for name in RETENTION:
        value = environ.get("PGBACKREST_" + name.upper().replace("-", "_"))
        if value:
            found[name] = value
    for option in options:
        name, _, value = option.removeprefix("--").partition("=")
        if name in RETENTION:
            found[name] = value
    return found, str(path) if path else "no config file (pgBackRest defaults)"


def retention(settings: Mapping[str, str], origin: str, policy: PgBackRestPolicy) -> CheckRecord:
    """repo1-retention-full/-diff/-archive against the policy, each problem named with its value and the rule."""
    problems, said = [], []
    full, full_type = settings.get("repo1-retention-full"), settings.get("repo1-retention-full-type", "count")
    unit = "day(s)" if full_type == "time" else "full set(s)"
    if full is None:
        problems.append(
            "repo1-retention-full is not set: pgBackRest never expires a full set, the repository grows without bound"
        )
    else:
        said.append(f"repo1-retention-full={full} ({full_type}: keeps {full} {unit})")
        wanted = policy.retention_full_days if full_type == "time" else policy.retention_full
        other = policy.retention_full if full_type == "time" else policy.retention_full_days
        if wanted is not None and _int(full) < wanted:
            problems.append(f"repo1-retention-full={full} keeps {full} {unit}, below the policy's {wanted}")
        elif wanted is None and other is not None:
            problems.append(
                f"repo1-retention-full-type={full_type}, but the policy sets retention in "
                f"{'days' if full_type != 'time' else 'full sets'} ({other}): the setting cannot prove it"
            )
    diff = settings.get("repo1-retention-diff")
    if policy.retention_diff is not None:
        if diff is None:
            problems.append(f"repo1-retention-diff is not set (the policy asks for {policy.retention_diff})")
        elif _int(diff) < policy.retention_diff:
            problems.append(
                f"repo1-retention-diff={diff} keeps {diff} diff set(s), below the policy's {policy.retention_diff}"
            )
    if diff is not None:
        said.append(f"repo1-retention-diff={diff}")
    archive, archive_type = (
        settings.get("repo1-retention-archive"),
        settings.get("repo1-retention-archive-type", "full"),
    )
    if archive is not None:
        said.append(f"repo1-retention-archive={archive} ({archive_type})")
        if policy.archive_for_every_full and (
            archive_type != "full" or (full is not None and _int(archive) < _int(full))
        ):
            problems.append(
                f"repo1-retention-archive={archive} (type {archive_type}) expires WAL that the retained full "
                "set(s) need: point-in-time recovery is only possible from the newest sets"
            )
    where = f" (read from {origin})"
    if problems:
        return CheckRecord(name="policy_retention", outcome="failed", detail="; ".join(problems) + where)
    return CheckRecord(
        name="policy_retention",
        outcome="passed",
        detail="retention meets the policy: " + ", ".join(said) + where,
    )


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"pgBackRest retention setting '{value}' is not a number") from None


def newest_age(info: StanzaInfo, now: datetime, kinds: tuple[str, ...], allowed: float, name: str) -> CheckRecord:
    """The newest set of `kinds` at most `allowed` seconds old (a newer full also counts as a diff's base)."""
    what = " or ".join(kinds)
    sets = [b for b in info.backups if b.type in kinds and not b.error]
    if not sets:
        return CheckRecord(name=name, outcome="failed", detail=f"the repository holds no {what} backup set")
    newest = max(sets, key=lambda b: b.stopped_at)
    age = max(0.0, (now - newest.stopped_at).total_seconds())
    ok = age <= allowed
    return CheckRecord(
        name=name,
        outcome="passed" if ok else "failed",
        detail=f"the newest {what} set {newest.label} stopped {iso(newest.stopped_at)}, {format_duration(age)} ago "
        f"(policy {format_duration(allowed)})" + ("" if ok else f": no {what} backup is being taken on schedule"),
    )


def encryption(info: StanzaInfo) -> CheckRecord:
    ok = info.cipher not in ("", "none")
    return CheckRecord(
        name="policy_encryption",
        outcome="passed" if ok else "failed",
        detail=f"the repository cipher is {info.cipher} (pgbackrest info)"
        + ("" if ok else ": backups are stored in clear, the policy requires repo1-cipher-type"),
    )


ARCHIVER_SQL = (
    "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
    "last_failed_time, now() FROM pg_stat_archiver"
)


def archive_health(dsn_env: str, rpo_s: float, previous_failed: int | None) -> tuple[CheckRecord, int | None]:
    """pg_stat_archiver on the source, read in a read-only transaction: the newest archived WAL within the
    RPO, no failure newer than the last success, failed_count not rising since the last drill.
    Returns the check and the failed_count seen (kept in the evidence for the next drill)."""
    name = "policy_archive_health"
    dsn = os.environ.get(dsn_env)
    if not dsn:
        return CheckRecord(name=name, outcome="error", detail=f"could not verify: {dsn_env} is not set"), None
    try:
        with psycopg.connect(dsn, connect_timeout=15, options="-c default_transaction_read_only=on") as conn:
            conn.read_only = True
            row = conn.execute(ARCHIVER_SQL).fetchone()
    except psycopg.Error as exc:
        text = proc.redact(str(exc)).strip().splitlines()
        reason = text[0] if text else type(exc).__name__
        return CheckRecord(name=name, outcome="error", detail=f"could not verify: the source refused: {reason}"), None
    assert row is not None
    archived, last_wal, last_at, failed, failed_wal, failed_at, now = row
    problems = []
    if last_at is None:
        problems.append("the source has never archived a WAL segment")
    elif (now - last_at).total_seconds() > rpo_s:
        problems.append(f"the last archived WAL {last_wal} is {format_duration((now - last_at).total_seconds())} old")
    if failed_at is not None and (last_at is None or failed_at > last_at):
        problems.append(f"archiving is failing: {failed_wal} failed at {iso(failed_at)}, after the last success")
    if previous_failed is not None and failed > previous_failed:
        problems.append(f"failed_count rose from {previous_failed} to {failed} since the last drill")
    seen = (
        f"pg_stat_archiver: {archived} archived, last {last_wal} at {iso(last_at)}; failed_count {failed}"
        f"{f', last failure {failed_wal} at {iso(failed_at)}' if failed_at else ''} (RPO {format_duration(rpo_s)})"
    )
    if problems:
        return CheckRecord(
            name=name, outcome="failed", detail="; ".join(problems) + f" ({seen})", sql=ARCHIVER_SQL
        ), failed
    return CheckRecord(name=name, outcome="passed", detail=seen, sql=ARCHIVER_SQL), failed


def check(
    name: str,
    policy: PgBackRestPolicy,
    source: PgBackRestSource,
    info: StanzaInfo,
    rpo_s: float,
    previous_failed: Callable[[], int | None],
) -> tuple[CheckRecord, int | None]:
    """One policy check of the `latest` drill, and the failed_count pg_stat_archiver showed (archive health).

    A setting or source that cannot be read is could-not-verify (an error), never a pass."""
    try:
        if name == "policy_retention":
            return retention(*read_settings(source.config, source.stanza, source.options), policy), None
        if name in ("policy_full_age", "policy_diff_age"):
            full = name == "policy_full_age"
            allowed = policy.full_max_age if full else policy.diff_max_age
            assert allowed is not None  # plan() lists the check only when the policy sets it
            return newest_age(info, utcnow(), ("full",) if full else ("full", "diff"), allowed, name), None
        if name == "policy_encryption":
            return encryption(info), None
        assert policy.source_dsn_env is not None
        return archive_health(policy.source_dsn_env, rpo_s, previous_failed())
    except RestoreDrillError as exc:
        return CheckRecord(name=name, outcome="error", detail=f"could not verify: {exc}"), None


def previous_failed_count(reports_dir: Path, database: str, run_id: str) -> int | None:
    """pg_stat_archiver.failed_count the newest earlier pgBackRest drill of this database saw, if recorded."""
    with contextlib.suppress(Exception):  # unreadable history: no comparison, the other rules still apply
        earlier = [
            r
            for r in load_records(reports_dir)
            if r.database == database and r.layer == "pgbackrest" and r.run_id != run_id
        ]
        for record in sorted(earlier, key=lambda r: r.started_at, reverse=True):
            seen = record.rpo_detail.get("archiver_failed_count")
            if seen is not None:
                return int(seen)
    return None


def repository_cost(source: PgBackRestSource, info: StanzaInfo, prices: CostPrices) -> tuple[StorageCost, list[str]]:
    """The repository's size (each set's own files, and the WAL) priced by its repo1-type; notes if unknown."""
    notes = []
    try:
        repo_type = read_settings(source.config, source.stanza, source.options)[0].get("repo1-type", "posix")
    except ConfigError as exc:
        repo_type = "posix"
        notes.append(f"repository type unknown, priced as a volume: {exc}")
    own = [b.repo_delta_bytes if b.repo_delta_bytes is not None else b.repo_size_bytes for b in info.backups]
    return cost.pgbackrest_storage(repo_type, own, sum(w.size_bytes for w in info.wal), prices), notes
