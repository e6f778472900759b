"""Policy rules and the cost arithmetic on plain data: a missing day, late pruning, retention below policy,
stale sets, the settings' precedence, and the policy merge of global and per-database tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from restoredrill import cost
from restoredrill.config import CostPrices, PgBackRestPolicy, parse_config
from restoredrill.errors import ConfigError
from restoredrill.layers import logical_policy, pgbackrest_policy
from restoredrill.layers.logical_keys import dump_key, parse_key
from restoredrill.layers.pgbackrest_repo import BackupSet, StanzaInfo
from restoredrill.stores import StoredObject

PREFIX = "postgres/logical/"
NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
DAY = 86400.0


def daily(days: int, *, skip: tuple[int, ...] = ()) -> list:
    """A dump at 02:00 on each of the last `days` days (0 = today), oldest first, without the `skip` ones."""
    found = []
    for ago in range(days - 1, -1, -1):
        if ago in skip:
            continue
        taken = NOW.replace(hour=2) - timedelta(days=ago)
        parsed = parse_key(PREFIX, dump_key(PREFIX, "shop", taken), 100)
        assert parsed is not None
        found.append(parsed)
    return found


def test_a_dump_every_day_passes_and_a_younger_history_says_so() -> None:
    record = logical_policy.daily_dumps(daily(4), NOW, 30, 26 * 3600)
    assert record.outcome == "passed", record.detail
    assert "a dump on every one of the 3 day(s) 2026-11-30 .. 2026-12-02" in record.detail
    assert "history starts 2026-11-30, inside the 30-day window" in record.detail


def test_a_missing_day_fails_naming_the_date() -> None:
    record = logical_policy.daily_dumps(daily(10, skip=(3,)), NOW, 30, 26 * 3600)
    assert record.outcome == "failed"
    assert "no dump on 1 of 9 day(s)" in record.detail
    assert "missing 2026-11-30" in record.detail


def test_todays_dump_is_not_due_before_the_rpo_allows() -> None:
    record = logical_policy.daily_dumps(daily(5, skip=(0,)), NOW, 30, 26 * 3600)
    assert record.outcome == "passed", record.detail


def test_pruning_fails_on_a_dump_older_than_window_and_grace() -> None:
    dumps = daily(40)
    record = logical_policy.pruning(dumps, NOW, 30, 2)
    assert record.outcome == "failed"
    assert dumps[0].key in record.detail
    assert "older than 30-day retention + 2 day(s) grace" in record.detail
    assert logical_policy.pruning(daily(32), NOW, 30, 2).outcome == "passed"


def test_s3_only_items_are_not_applicable_to_a_local_folder_and_said_so() -> None:
    config = parse_config(
        {
            "objectives": {"logical": {"rpo": "26h", "rto": "1h"}},
            "policy": {"logical": {"versioning": True}},
            "databases": {"shop": {"logical": {"source": "file:///backups/", "policy": {"grace_days": 5}}}},
        }
    )
    policy = config.logical_policy("shop")
    assert policy is not None
    assert (policy.grace_days, policy.versioning) == (5, True)  # the database's table over the global one
    local = logical_policy.plan(policy, "file:///backups/")
    # planned all the same, so each is recorded as a not_applicable check with its reason (never a pass)
    assert local.names == ("policy_daily_dumps", "policy_pruning", "policy_encryption", "policy_bucket_versioning")
    assert list(local.not_applicable) == ["policy_encryption", "policy_bucket_versioning"]
    assert "is a local folder" in local.not_applicable["policy_encryption"]
    on_s3 = logical_policy.plan(policy, "s3://bucket/p/")
    assert on_s3.names == ("policy_daily_dumps", "policy_pruning", "policy_encryption", "policy_bucket_versioning")
    assert logical_policy.plan(None, "s3://bucket/p/").names == ()


def test_retention_below_policy_fails_naming_the_setting_and_both_values() -> None:
    policy = PgBackRestPolicy(retention_full=4, retention_diff=2)
    settings = {"repo1-retention-full": "2", "repo1-retention-diff": "3"}
    record = pgbackrest_policy.retention(settings, "pgbackrest.conf", policy)
    assert record.outcome == "failed"
    assert "repo1-retention-full=2 keeps 2 full set(s), below the policy's 4" in record.detail
    ok = pgbackrest_policy.retention(settings, "pgbackrest.conf", PgBackRestPolicy(retention_full=2))
    assert ok.outcome == "passed", ok.detail


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "repo1-retention-full is not set"),
        ({"repo1-retention-full": "2"}, "repo1-retention-diff is not set"),
        (
            {"repo1-retention-full": "2", "repo1-retention-diff": "2", "repo1-retention-archive": "1"},
            "repo1-retention-archive=1 (type full) expires WAL",
        ),
        (
            {"repo1-retention-full": "14", "repo1-retention-full-type": "time", "repo1-retention-diff": "2"},
            "the policy sets retention in full sets (2)",
        ),
    ],
)
def test_retention_gaps_each_named(settings: dict[str, str], expected: str) -> None:
    record = pgbackrest_policy.retention(settings, "x", PgBackRestPolicy(retention_full=2, retention_diff=1))
    assert record.outcome == "failed"
    assert expected in record.detail


def test_settings_precedence_and_the_passphrase_never_read(tmp_path: Path) -> None:
    config = tmp_path / "pgbackrest.conf"
    config.write_text(
        "[global]\nrepo1-retention-full=1\nrepo1-retention-diff=1\nrepo1-cipher-pass=s3cret\n"
        "[main]\nrepo1-retention-full=3\n[other]\nrepo1-retention-full=9\n"
    )
    found, origin = pgbackrest_policy.read_settings(
        config, "main", ["--repo1-retention-diff=5"], {"PGBACKREST_REPO1_TYPE": "s3"}
    )
    assert found == {"repo1-retention-full": "3", "repo1-retention-diff": "5", "repo1-type": "s3"}
    assert origin == str(config)
    config.write_text("not an ini file\n")
    with pytest.raises(ConfigError, match="cannot be read for its retention settings"):
        pgbackrest_policy.read_settings(config, "main", [], {})


def _set(label: str, kind: str, stopped: datetime) -> BackupSet:
    return BackupSet(
        label=label,
        type=kind,
        started_at=stopped,
        stopped_at=stopped,
        archive_start=None,
        archive_stop=None,
        size_bytes=1,
        repo_size_bytes=1,
        database_version="15",
        error=False,
    )


def test_a_stale_full_fails_and_a_newer_full_counts_as_a_diff_base() -> None:
    info = StanzaInfo("main", [_set("F1", "full", NOW - timedelta(days=9))], None, None, None, "none", "15")
    stale = pgbackrest_policy.newest_age(info, NOW, ("full",), 7 * DAY, "policy_full_age")
    assert stale.outcome == "failed"
    assert "the newest full set F1" in stale.detail
    assert "9d ago (policy 7d)" in stale.detail
    diff = pgbackrest_policy.newest_age(info, NOW, ("full", "diff"), 10 * DAY, "policy_diff_age")
    assert diff.outcome == "passed"
    assert pgbackrest_policy.encryption(info).outcome == "failed"
    assert "cipher is none" in pgbackrest_policy.encryption(info).detail


def test_monthly_cost_from_measured_sizes() -> None:
    prices = CostPrices()
    dumps = daily(2)
    objects = [StoredObject(d.key, 3 * cost.GIB) for d in dumps] + [StoredObject("other-db.dump", 50 * cost.GIB)]
    s3 = cost.logical_storage("s3://b/p/", dumps, objects, prices)
    assert (s3.storage, s3.size_bytes, s3.monthly) == ("S3 Standard", 6 * cost.GIB, round(6 * 0.023, 4))
    assert cost.logical_storage("file:///x/", dumps, objects, prices).price_gb_month == prices.volume_gb_month
    repo = cost.pgbackrest_storage("posix", [cost.GIB, cost.GIB], cost.GIB, prices)
    assert repo.monthly == round(3 * 0.088, 4)
    rds = cost.rds_storage([{"AllocatedStorage": 20}, {"AllocatedStorage": 20}], prices)
    assert (rds.size_bytes, rds.monthly) == (40 * cost.GIB, round(40 * 0.095, 4))


def test_rds_audit_takes_the_global_policy_and_the_database_overrides_it() -> None:
    data = {
        "objectives": {"rds": {"rpo": "10m", "rto": "1h"}},
        "policy": {"rds": {"retention_days": 14, "production": False}},
        "databases": {
            "a": {"rds": {"source_instance": "a"}},
            "b": {"rds": {"source_instance": "b", "policy": {"retention_days": 35}}},
        },
    }
    config = parse_config(data)
    assert (config.rds_policy("a").retention_days, config.rds_policy("a").production) == (14, False)
    assert (config.rds_policy("b").retention_days, config.rds_policy("b").production) == (35, False)
    del data["policy"]
    assert parse_config(data).rds_policy("a").production is True  # no table: the strategy's defaults
