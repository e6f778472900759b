"""The embedded demo: a source cluster with a small shop schema, several days of dumps made by the
backup job into a local folder, and a drills.toml pointing at them. Rebuilt from scratch on every run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from restoredrill import pgtools
from restoredrill.backup import backup_logical
from restoredrill.evidence import new_run_id
from restoredrill.targets.local import LocalInstance

DEMO_DATABASE = "shop"
DAYS = 4
USERS = 2000
ORDERS_PER_DAY = 5000

SCHEMA = """
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    status order_status NOT NULL DEFAULT 'new',
    amount numeric(10, 2) NOT NULL CHECK (amount >= 0),
    created_at timestamptz NOT NULL
);
CREATE INDEX orders_created_at_idx ON orders (created_at);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE SEQUENCE invoice_number_seq START 100000;
CREATE TABLE invoices (
    number bigint PRIMARY KEY DEFAULT nextval('invoice_number_seq'),
    order_id bigint NOT NULL REFERENCES orders (id),
    issued_at timestamptz NOT NULL
);
ALTER SEQUENCE invoice_number_seq OWNED BY invoices.number;
CREATE VIEW recent_orders AS
    SELECT o.id, u.email, o.amount, o.created_at FROM orders o JOIN users u ON u.id = o.user_id
    WHERE o.created_at > now() - interval '7 days';
CREATE MATERIALIZED VIEW daily_revenue AS
    SELECT date_trunc('day', created_at) AS day, count(*) AS orders, sum(amount) AS revenue
    FROM orders GROUP BY 1;
INSERT INTO users (email, name, created_at)
    SELECT 'user' || i || '@example.com', 'User ' || i, now() - interval '90 days' + i * interval '1 minute'
    FROM generate_series(1, %(users)s) AS i;
"""

DAY_OF_ORDERS = (
    """
INSERT INTO orders (user_id, status, amount, created_at)
    SELECT 1 + (i * 7919) %% %(users)s, (ARRAY['new','paid','shipped','cancelled'])[1 + i %% 4]::order_status,
           round((5 + (i * 37) %% 500)::numeric, 2), %(until)s - (i * interval '1 second' * 86400 / %(n)s)
    FROM generate_series(0, %(n)s - 1) AS i""",
    """
INSERT INTO invoices (order_id, issued_at)
    SELECT id, created_at + interval '1 minute' FROM orders
    WHERE status IN ('paid', 'shipped') AND created_at > %(until)s - interval '1 day'""",
    "REFRESH MATERIALIZED VIEW daily_revenue",
)

CONFIG = """# Written by `restoredrill demo`: drills against the demo's own backups.
reports_dir = "{reports}"

[target]
kind = "auto"   # a container of the backup's major when a Docker engine answers, else a local instance

[objectives.logical]
rpo = "26h"   # a daily dump may be 26 hours old at most, and dumps at most 26 hours apart
rto = "15m"

[databases.{db}.logical]
source = "file://{store}/postgres/logical/"
require_manifest = true

[databases.{db}.logical.policy]   # the strategy's rules for the dump store (README, "Backup policy")
grace_days = 2    # a dump may outlive the 30-day window by 2 days before pruning counts as broken
# encryption (on by default), versioning and object lock are S3 settings: the report says they do not
# apply to this local folder

[[databases.{db}.checks.min_rows]]
table = "public.users"
min = {users}

[[databases.{db}.checks.freshness]]
table = "public.orders"
column = "created_at"

[[databases.{db}.checks.sql]]
name = "every order belongs to a user"
sql = "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
expect = 0

[objectives.pgbackrest]
rpo = "15m"   # archived WAL may be 15 minutes old at most
rto = "30m"

[databases.{db}.pgbackrest]
stanza = "{stanza}"
config = "{pgbackrest_config}"
pitr_target = "3s"        # point in time: 3 s before the newest archived WAL (a short demo window)

[databases.{db}.pgbackrest.policy]   # the repository's settings and sets against the strategy
retention_full = 2        # repo1-retention-full in the stanza's config keeps at least 2 full sets
retention_diff = 2
full_max_age = "7d"       # a full set at least weekly
diff_max_age = "1d"       # a diff (or full) at least daily
encryption = false        # the demo repository has no cipher; a production policy keeps this true

[databases.{db}.pgbackrest.marker]  # the heartbeat table written every second by the source
table = "public.restoredrill_heartbeat"
column = "beat_at"
interval = "1s"
tolerance = "5s"

[databases.{db}.pgbackrest.ledger]  # PITR to random targets holds exactly the rows committed before them
table = "public.ledger"
examples = 2
"""


def load_shop(instance: LocalInstance, database: str = DEMO_DATABASE) -> str:
    """Create the shop schema in a running instance; returns a DSN (with password) for the backup job."""
    assert instance.connection is not None
    instance.create_database(database)
    with instance.connection.connect(database) as conn:
        conn.execute(SCHEMA.replace("%(users)s", str(USERS)))
    return instance.connection.conninfo(database) + f" password={instance.connection.password}"


def add_day_of_orders(instance: LocalInstance, until: datetime, database: str = DEMO_DATABASE) -> None:
    assert instance.connection is not None
    with instance.connection.connect(database) as conn:
        for statement in DAY_OF_ORDERS:
            conn.execute(statement, {"users": USERS, "n": ORDERS_PER_DAY, "until": until})  # type: ignore[arg-type]


def make_daily_backups(
    destination: str, *, days: int = DAYS, now: datetime | None = None, log: Callable[[str], None] = print
) -> list[str]:
    """A source cluster with the shop schema, one day of orders and one backup-job run per day."""
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    now = now or datetime.now(UTC).replace(microsecond=0)
    keys = []
    log(f"demo: starting a source PostgreSQL ({bindir})")
    with LocalInstance(bindir, run_id=new_run_id(), label="demo-source") as source:
        dsn = load_shop(source)
        for days_ago in range(days - 1, -1, -1):
            taken_at = now - timedelta(days=days_ago)
            add_day_of_orders(source, taken_at)
            result = backup_logical(dsn, destination, sse=None, now=taken_at, log=lambda _m: None)
            log(f"demo: backup job wrote {result.key} ({result.size_bytes} bytes, {result.rows} rows)")
            keys.append(result.key)
    return keys


def build_demo(folder: Path, reports: Path, log: Callable[[str], None] = print) -> Path:
    """Build (or rebuild) the demo in `folder`; returns the path of its drills.toml.

    One source cluster serves both layers: the backup job writes four daily dumps (simulated days) into a
    local store, then the cluster archives WAL with pgBackRest while full, diff and incr sets are taken
    and a heartbeat and a ledger keep writing.
    """
    from restoredrill.demo_pgbackrest import make_pgbackrest_repo

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "backups"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    now = datetime.now(UTC).replace(microsecond=0)

    def logical_backups(source: LocalInstance) -> None:
        dsn = load_shop(source)
        for days_ago in range(DAYS - 1, -1, -1):
            taken_at = now - timedelta(days=days_ago)
            add_day_of_orders(source, taken_at)
            result = backup_logical(
                dsn, f"file://{store}/postgres/logical/", sse=None, now=taken_at, log=lambda _m: None
            )
            log(f"demo: backup job wrote {result.key} ({result.size_bytes} bytes, {result.rows} rows)")

    repo = make_pgbackrest_repo(folder / "pgbackrest", log=log, database=DEMO_DATABASE, prepare=logical_backups)
    config = folder / "drills.toml"
    config.write_text(
        CONFIG.format(
            reports=reports.resolve(),
            store=store,
            db=DEMO_DATABASE,
            users=USERS,
            stanza=repo.stanza,
            pgbackrest_config=repo.config,
        )
    )
    log(f"demo: configuration in {config}")
    return config
