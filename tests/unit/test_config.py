"""drills.toml validation: every mistake is one sentence naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from restoredrill.config import load_config, parse_config
from restoredrill.errors import ConfigError

GOOD = {
    "objectives": {"logical": {"rpo": "26h", "rto": "90m"}},
    "databases": {"shop": {"logical": {"source": "s3://bucket/postgres/logical/"}}},
}


def test_valid_config_parses_durations_and_merges_objectives() -> None:
    data = {
        **GOOD,
        "databases": {"shop": {"logical": {"source": "file:///x/"}, "objectives": {"logical": {"rpo": "2h"}}}},
    }
    config = parse_config(data)
    objective = config.objective("shop", "logical")
    assert (objective.rpo, objective.rto) == (7200, 5400)
    assert config.databases_with("logical") == ["shop"]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        ({"objectives": {"logical": {"rpo": "26x", "rto": "1h"}}}, "'objectives.logical.rpo' '26x' is not a duration"),
        ({"objectives": {"logical": {"rpo": "26h"}}}, "'objectives.logical.rto' is required but missing"),
        ({"databases": {"shop": {"logical": {"source": "http://x/"}}}}, "'databases.shop.logical.source' must start"),
        ({"databases": {"shop": {"logicl": {}}}}, "'databases.shop.logicl' is not a known setting"),
        ({"databases": {}}, "'databases' names no database to drill"),
        ({"evidence_store": "file:///x/"}, "'evidence_store' must be s3://bucket/prefix"),
        ({"evidence_store": "s3://"}, "'evidence_store' must be s3://bucket/prefix"),
        (
            {"evidence_store": "s3://bucket/evidence/"},
            "evidence_store is in bucket bucket, which holds the backups of shop: drills never write where backups",
        ),
        ({"objectives": {}}, "no objectives for layer 'logical'"),
        (
            {"databases": {"shop": {"logical": {"source": "s3://b/"}, "checks": {"min_rows": [{"table": "t"}]}}}},
            "'databases.shop.checks.min_rows.0.min' is required but missing",
        ),
        ({"target": {"jobs": -1}}, "'target.jobs'"),
    ],
)
def test_malformed_config_is_one_sentence_naming_the_key(mutation: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**GOOD, **mutation})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "drills.toml"
    broken.write_text("[objectives.logical\nrpo = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(broken)


def test_reports_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "drills.toml"
    config_file.write_text(
        '[objectives.logical]\nrpo = "1d"\nrto = "1h"\n[databases.a.logical]\nsource = "file:///b/"\n'
    )
    assert load_config(config_file).reports_dir == tmp_path / "reports"
