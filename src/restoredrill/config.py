"""drills.toml: what to drill, where the backups are, the objectives written down in advance.

Example:

    [objectives.logical]
    rpo = "26h"          # newest dump may be this old; consecutive dumps may be this far apart
    rto = "1h"           # fetch + restore until the database is usable

    [target]
    kind = "local"       # a throwaway initdb instance on loopback
    jobs = 0             # pg_restore -j; 0 = number of cores

    [databases.shop.logical]
    source = "s3://backups/postgres/logical/"
    region = "eu-west-1"

    [[databases.shop.checks.min_rows]]
    table = "public.orders"
    min = 1000
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from restoredrill.durations import parse_duration
from restoredrill.errors import ConfigError

DEFAULT_CONFIG = "drills.toml"
Seconds = Annotated[float, BeforeValidator(parse_duration)]
MAX_CONFIG_BYTES = 1024 * 1024  # a drills.toml is a few KB; a bigger file is a mistake, refused before parsing


def _time_or_duration(spec: str, problem: str, *, latest: bool = False) -> str:
    """Checked at load time, so a typo is a usage error before any restore, not a drill that could not run."""
    if latest and spec == "latest":
        return spec
    try:
        datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        try:
            parse_duration(spec)
        except ValueError:
            raise ValueError(problem) from None
    return spec


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Strict)


class Objective(Strict):
    rpo: Seconds = Field(description="recovery point objective, e.g. '26h'")
    rto: Seconds = Field(description="recovery time objective, e.g. '1h'")


class PartialObjective(Strict):
    rpo: Seconds | None = None
    rto: Seconds | None = None


class LogicalSource(Strict):
    source: str = Field(description="s3://bucket/prefix/ or file:///folder/ holding <date>/<db>-<time>.dump")
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    dump_name: str | None = Field(None, description="the <db> part of the dump keys, if not the database name")
    source_database: str | None = Field(
        None,
        description="the database the archive header must name (default: dump_name, else the database's key); "
        "a dump of any other database under the key fails the drill",
    )
    retention_days: int = Field(30, ge=1, description="window in which gaps between dumps are measured")
    require_manifest: bool = Field(False, description="fail when the dump has no manifest")
    policy: LogicalPolicy | None = Field(None, description="policy checks; default: the global [policy.logical]")

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("s3://", "file://")):
            raise ValueError("must start with s3:// or file://")
        if value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("names no bucket")
        return value


class MinRows(Strict):
    table: str
    min: int = Field(ge=0)


class Freshness(Strict):
    table: str
    column: str
    max_lag: Seconds | None = Field(None, description="default: the layer's RPO")


class CustomSql(Strict):
    name: str
    sql: str
    expect: str | int | float | bool


class Checks(Strict):
    min_rows: list[MinRows] = []
    freshness: list[Freshness] = []
    sql: list[CustomSql] = []


class Marker(Strict):
    """A heartbeat table that gets a timestamped row every `interval`: proves how far WAL was replayed."""

    table: str = "public.restoredrill_heartbeat"
    column: str = "beat_at"
    interval: Seconds = 1.0
    tolerance: Seconds = Field(30.0, description="archive delay allowed between the newest beat and newest WAL")


class Ledger(Strict):
    """An append-only table with track_commit_timestamp on: a PITR restore must hold exactly the rows
    committed at or before its target."""

    table: str
    id_column: str = "id"
    examples: int = Field(2, ge=1, le=20, description="random PITR targets tried per drill")


class PgBackRestSource(Strict):
    stanza: str
    config: Path | None = Field(None, description="the user's own pgbackrest.conf (never rewritten)")
    options: list[str] = Field([], description="extra pgbackrest flags, e.g. --repo1-s3-uri-style=path")
    cipher_pass_env: str | None = Field(None, description="env var holding repo1-cipher-pass")
    database: str | None = Field(None, description="database checked in the restored cluster (default: the name)")
    superuser: str = "postgres"
    recovery_targets: list[Literal["latest", "immediate", "time", "random"]] = ["latest", "immediate", "time"]
    random_seed: int | None = Field(
        None, description="seed of the `random` recovery target (default: a new one each run, kept in the evidence)"
    )
    pitr_target: str = Field("1h", description="an ISO time, or a duration before the newest archived WAL")
    wal_segment_mb: int = Field(16, ge=1)
    marker: Marker | None = None
    ledger: Ledger | None = None
    job_retry: int = Field(0, ge=0, description="pgbackrest --job-retry: 0 reports corruption in seconds")
    policy: PgBackRestPolicy | None = Field(None, description="policy checks; default: the global [policy.pgbackrest]")

    @field_validator("pitr_target")
    @classmethod
    def _pitr_target(cls, value: str) -> str:
        return _time_or_duration(value, "is neither an ISO time nor a duration like '1h'")

    @field_validator("options")
    @classmethod
    def _no_passphrase_in_options(cls, options: list[str]) -> list[str]:
        # pgBackRest refuses its passphrase on the command line, and a drills.toml is not a place for secrets.
        for option in options:
            name = option.split("=", 1)[0].strip().lower()
            if name.endswith("cipher-pass"):
                raise ValueError(
                    "must not carry the cipher passphrase: put it in an environment variable and name that "
                    'variable with cipher_pass_env (e.g. cipher_pass_env = "PGBACKREST_REPO1_CIPHER_PASS")'
                )
        return options


class LogicalPolicy(Strict):
    """The strategy's rules for the dump store, each one read-only check `policy_<name>` (README, "Backup policy").

    The window is the source's `retention_days`: the same window the RPO's largest gap is measured in."""

    daily_dumps: bool = Field(True, description="one dump per UTC day in the retention window, no day missing")
    pruning: bool = Field(True, description="no dump older than retention_days + grace_days (pruning works)")
    grace_days: int = Field(2, ge=0, description="days a dump may outlive the window before pruning is late")
    encryption: bool = Field(True, description="server-side encryption on every object (S3 only)")
    kms_key_id: str | None = Field(None, description="every object must be encrypted with this KMS key (S3 only)")
    versioning: bool = Field(False, description="the bucket must have versioning enabled (S3 only)")
    object_lock: bool = Field(False, description="the bucket must have object lock enabled (S3 only)")


class PgBackRestPolicy(Strict):
    """The strategy's rules for the pgBackRest repository, read from its settings and `pgbackrest info`."""

    retention_full: int | None = Field(
        None, ge=1, description="repo1-retention-full must keep at least this many full sets (count type)"
    )
    retention_full_days: int | None = Field(
        None, ge=1, description="repo1-retention-full must keep full sets at least this many days (time type)"
    )
    retention_diff: int | None = Field(None, ge=1, description="repo1-retention-diff must keep at least this many")
    archive_for_every_full: bool = Field(
        True, description="repo1-retention-archive must not expire WAL that a retained full set needs for PITR"
    )
    full_max_age: Seconds | None = Field(7 * 86400.0, description="the newest full set may be this old, e.g. '7d'")
    diff_max_age: Seconds | None = Field(None, description="the newest diff (or full) set may be this old, e.g. '1d'")
    encryption: bool = Field(True, description="the repository must use a cipher other than none")
    source_dsn_env: str | None = Field(
        None, description="env var holding a read-only connection string to the source: pg_stat_archiver health"
    )


class RdsPolicy(Strict):
    """The strategy's backup settings, audited on the source instance."""

    retention_days: int = Field(30, ge=1)
    production: bool = Field(True, description="require deletion protection and Multi-AZ")
    dr_region: str | None = Field(None, description="region that must hold replicated automated backups")


class RdsSource(Strict):
    source_instance: str
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    restore_from: Literal["snapshot", "point_in_time"] = "snapshot"
    snapshot_type: Literal["any", "automated", "manual"] = "any"
    restore_time: str = Field("latest", description="'latest', an ISO time, or a duration before the latest")
    instance_class: str = "db.t3.micro"
    subnet_group: str | None = None
    security_groups: list[str] = []
    available_timeout: Seconds = 3600.0
    poll_interval: Seconds = 15.0
    ttl: Seconds = Field(6 * 3600.0, description="after this the janitor may delete a leftover drill instance")
    dbname: str | None = Field(None, description="database to check (default: the name)")
    user: str = "postgres"
    password_env: str | None = Field(None, description="env var holding the master password")
    iam_auth: bool = False
    connect_via: str | None = Field(None, description="a DSN (bastion, tunnel) used instead of the endpoint")
    policy: RdsPolicy | None = Field(
        None, description="settings audit; default: the global [policy.rds], else RdsPolicy()"
    )

    @field_validator("restore_time")
    @classmethod
    def _restore_time(cls, value: str) -> str:
        return _time_or_duration(value, "is not 'latest', an ISO time or a duration like '1h'", latest=True)


Layer = Literal["logical", "pgbackrest", "rds"]


class DriftOverride(Strict):
    """[databases.<name>.drift]: only the tolerances this database sets differently from [drift]."""

    max_table_shrink: float | None = Field(None, ge=0, le=1)
    small_table_rows: int | None = Field(None, ge=0)
    max_size_shrink: float | None = Field(None, ge=0, le=1)
    objects_may_vanish: bool | None = None
    ignore: list[str] | None = None


class Drift(Strict):
    """[drift]: how far a restore may differ from the last passing drill of the same database, layer and variant."""

    max_table_shrink: float = Field(
        0.10, ge=0, le=1, description="share of its rows a table may lose since the last passing drill"
    )
    small_table_rows: int = Field(
        100, ge=0, description="tables with fewer rows at the last passing drill fail only when emptied"
    )
    max_size_shrink: float = Field(0.5, ge=0, le=1, description="share of its size the database may lose")
    objects_may_vanish: bool = Field(False, description="a schema, table, column, index, ... may disappear")
    ignore: list[str] = Field(
        [], description="names (fnmatch patterns) of tables and objects left out, e.g. a table truncated on purpose"
    )


class Coverage(Strict):
    """[coverage]: every configured drill must have passed within its cadence, or `restoredrill coverage` fails."""

    cadence: Seconds = Field(31 * 86400.0, gt=0, description="a passing drill at least this often, e.g. '31d'")


class PartialCoverage(Strict):
    cadence: Seconds | None = Field(None, gt=0)


class Database(Strict):
    logical: LogicalSource | None = None
    pgbackrest: PgBackRestSource | None = None
    rds: RdsSource | None = None
    objectives: dict[Layer, PartialObjective] = {}
    checks: Checks = Checks()
    drift: DriftOverride = DriftOverride()
    coverage: PartialCoverage = PartialCoverage()

    @model_validator(mode="after")
    def _has_a_layer(self) -> Database:
        if self.logical is None and self.pgbackrest is None and self.rds is None:
            raise ValueError("names no layer to drill (give it a logical, pgbackrest or rds table)")
        return self


class Target(Strict):
    kind: Literal["local", "container", "auto"] = Field(
        "local", description="auto: a container when a Docker engine answers, else a local instance"
    )
    image: str = Field("postgres:{major}", description="container image template; {major} is the backup's major")
    container_uid: int = Field(999, description="uid the image runs PostgreSQL as (official images: 999)")
    jobs: int = Field(0, ge=0, description="pg_restore -j; 0 means the number of cores")
    pg_bindir: Path | None = Field(None, description="server binaries to use instead of searching")
    workdir: Path | None = Field(None, description="where throwaway instances and downloads live")
    run_as: str | None = Field(None, description="OS user for the server when running as root")
    start_timeout: Seconds = 60.0
    restore_timeout: Seconds = 4 * 3600.0
    check_timeout: Seconds = 1800.0

    @property
    def workers(self) -> int:
        """`jobs`, with 0 resolved: the processes a restore, a verify or the scans may use at once."""
        return self.jobs or os.cpu_count() or 2


class Policies(Strict):
    """Global `[policy.<layer>]` tables: the default of every database's own `<layer>.policy` table."""

    logical: LogicalPolicy | None = None
    pgbackrest: PgBackRestPolicy | None = None
    rds: RdsPolicy | None = None


class CostPrices(Strict):
    """Storage prices per GB-month, for the monthly cost of each layer's measured backups.

    Defaults: AWS list prices for eu-west-1 (Ireland), the region of the strategy and the README's examples:
    - S3 Standard, first 50 TB: $0.023 (https://aws.amazon.com/s3/pricing/);
    - EBS gp3 volume: $0.088 (https://aws.amazon.com/ebs/pricing/), for a posix pgBackRest repository or a
      local dump folder, which live on a block volume;
    - RDS backup storage beyond the free allowance (snapshots): $0.095
      (https://aws.amazon.com/rds/postgresql/pricing/).
    """

    currency: str = "USD"
    s3_gb_month: float = Field(0.023, ge=0)
    volume_gb_month: float = Field(0.088, ge=0)
    rds_snapshot_gb_month: float = Field(0.095, ge=0)


class DrillConfig(Strict):
    objectives: dict[Layer, Objective]
    policy: Policies = Policies()
    cost: CostPrices = CostPrices()
    target: Target = Target()
    reports_dir: Path = Path("reports")
    databases: dict[str, Database]
    # Operating settings (README, "Operating it"): notifications and the disk-space preflight.
    notify_env: str | None = Field(None, description="env var holding a Slack-compatible webhook URL")
    notify_on: Literal["failure", "always"] = Field("failure", description="post on a non-green verdict, or always")
    disk_reserve_mb: int = Field(1024, ge=0, description="free space kept in the workdir beyond a restore's estimate")
    drift: Drift = Drift()
    coverage: Coverage = Coverage()
    # The durable evidence store (README, "The evidence store"): write-once, read back for history and the chain.
    evidence_store: str | None = Field(
        None, description="s3://bucket/prefix where records, history and reports are also written, write-once"
    )
    evidence_store_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint for the store")
    evidence_store_region: str | None = None
    evidence_store_profile: str | None = None

    @field_validator("evidence_store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or len(value.split("/")[2]) == 0):
            raise ValueError("must be s3://bucket/prefix (the store is an S3 bucket)")
        return value

    @field_validator("databases")
    @classmethod
    def _at_least_one(cls, value: dict[str, Database]) -> dict[str, Database]:
        if not value:
            raise ValueError("names no database to drill")
        return value

    @model_validator(mode="after")
    def _store_is_not_a_backup_bucket(self) -> DrillConfig:
        # Drills never write where backups live (rule 2): evidence goes to a bucket of its own.
        if self.evidence_store is None:
            return self
        bucket = self.evidence_store.split("/")[2]
        for name, database in self.databases.items():
            source = database.logical.source if database.logical else ""
            if source.startswith("s3://") and source.split("/")[2] == bucket:
                raise ValueError(
                    f"evidence_store is in bucket {bucket}, which holds the backups of {name}: drills never write "
                    "where backups live, give the evidence a bucket of its own"
                )
        return self

    def objective(self, database: str, layer: Layer) -> Objective:
        base = self.objectives.get(layer)
        override = self.databases[database].objectives.get(layer, PartialObjective())
        if base is None and (override.rpo is None or override.rto is None):
            raise ConfigError(f"no objectives for layer '{layer}' (add [objectives.{layer}] rpo and rto)")
        return Objective(
            rpo=override.rpo if override.rpo is not None else base.rpo,  # type: ignore[union-attr]
            rto=override.rto if override.rto is not None else base.rto,  # type: ignore[union-attr]
        )

    def drift_policy(self, database: str) -> Drift:
        """[drift], with what [databases.<name>.drift] sets instead."""
        override = self.databases[database].drift.model_dump(exclude_none=True)
        return self.drift.model_copy(update=override)

    def cadence(self, database: str) -> float:
        """Seconds within which the database's drills must have passed (coverage ledger)."""
        own = self.databases[database].coverage.cadence
        return own if own is not None else self.coverage.cadence

    def logical_policy(self, database: str) -> LogicalPolicy | None:
        """The database's logical policy over the global one; None when neither is written: no policy checks."""
        source = self.databases[database].logical
        return _merged(self.policy.logical, source.policy if source else None)

    def pgbackrest_policy(self, database: str) -> PgBackRestPolicy | None:
        source = self.databases[database].pgbackrest
        return _merged(self.policy.pgbackrest, source.policy if source else None)

    def rds_policy(self, database: str) -> RdsPolicy:
        """The RDS settings audit always runs: with the strategy's defaults when no table is written."""
        source = self.databases[database].rds
        return _merged(self.policy.rds, source.policy if source else None) or RdsPolicy()

    def databases_with(self, layer: Layer) -> list[str]:
        return [name for name, db in self.databases.items() if getattr(db, layer) is not None]


def _merged(common: P | None, own: P | None) -> P | None:
    """A database's own policy table over the global one, setting by setting (only what it writes wins)."""
    if own is None or common is None:
        return own or common
    return common.model_copy(update=own.model_dump(exclude_unset=True))


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def _sentence(error: dict[str, Any]) -> str:
    where = _location(error)
    kind = error["type"]
    if kind == "missing":
        return f"'{where}' is required but missing"
    if kind == "extra_forbidden":
        return f"'{where}' is not a known setting"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"'{where}' {message}" if kind == "value_error" else f"'{where}': {message}"


def parse_config(data: dict[str, Any], origin: str = "configuration") -> DrillConfig:
    try:
        config = DrillConfig.model_validate(data)
    except ValidationError as exc:
        # Every problem by name, one line each: a typo must not hide behind "and 1 more problem".
        problems = list(dict.fromkeys(_sentence(error) for error in exc.errors()))
        if len(problems) == 1:
            raise ConfigError(f"{origin}: {problems[0]}") from None
        raise ConfigError(f"{origin} has {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)) from None
    for name, database in config.databases.items():
        for layer in ("logical", "pgbackrest", "rds"):
            if getattr(database, layer) is not None:
                config.objective(name, layer)  # type: ignore[arg-type]
    return config


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("RESTOREDRILL_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> DrillConfig:
    """Read and validate a drills.toml; every problem becomes one ConfigError sentence."""
    file = config_path(path)
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"configuration file {file} is {size / 1024 / 1024:.1f} MB, larger than any drills.toml needs "
                f"({MAX_CONFIG_BYTES // 1024 // 1024} MB at most): is it the right file?"
            )
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {file} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    config = parse_config(data, origin=str(file))
    if not config.reports_dir.is_absolute():
        config = config.model_copy(update={"reports_dir": file.parent.resolve() / config.reports_dir})
    return config
