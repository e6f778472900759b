"""The pgBackRest policy checks on a real repository (posix, repo1-retention-full=2, diff=2, no cipher):
retention read from the stanza's own config, set ages and the cipher from `pgbackrest info`. A retention
below the policy FAILS naming the setting and both values; an unencrypted repository fails when the policy
requires a cipher; what meets the policy passes. The repository is byte-for-byte the same afterwards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from restoredrill.config import PgBackRestPolicy
from restoredrill.layers import pgbackrest_policy
from restoredrill.layers.pgbackrest_repo import PgBackRest
from restoredrill.proc import RunAs
from tests.conftest import run_cli, traversable_tempdir, tree_digest
from tests.pgbackrest_support import Repo, drill_config

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pgbackrest-plain")]


@pytest.fixture
def scenario(pgbackrest_template: Repo) -> Iterator[tuple[Path, Repo]]:
    root = traversable_tempdir("rd-pgbr-policy-")
    yield root, pgbackrest_template.clone(root)
    shutil.rmtree(root, ignore_errors=True)


def test_settings_and_info_of_a_real_repository(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    settings, origin = pgbackrest_policy.read_settings(repo.config, repo.stanza, [], {})
    assert settings == {"repo1-retention-full": "2", "repo1-retention-diff": "2"}
    assert pgbackrest_policy.retention(settings, origin, PgBackRestPolicy(retention_full=2)).outcome == "passed"
    below = pgbackrest_policy.retention(settings, origin, PgBackRestPolicy(retention_full=4, retention_diff=3))
    assert below.outcome == "failed"
    assert "repo1-retention-full=2 keeps 2 full set(s), below the policy's 4" in below.detail
    assert "repo1-retention-diff=2 keeps 2 diff set(s), below the policy's 3" in below.detail
    assert str(repo.config) in below.detail
    (root / "work").mkdir(exist_ok=True)
    info = PgBackRest(
        repo.stanza,
        config=repo.config,
        options=[],
        cipher_pass_env=None,
        workdir=root / "work",
        run_as=RunAs.for_server(None),
    ).info()
    now = datetime.now(UTC)
    assert pgbackrest_policy.newest_age(info, now, ("full",), 86400, "policy_full_age").outcome == "passed"
    stale = pgbackrest_policy.newest_age(info, now, ("full",), 0.5, "policy_full_age")
    assert stale.outcome == "failed"
    assert "no full backup is being taken on schedule" in stale.detail
    clear = pgbackrest_policy.encryption(info)
    assert clear.outcome == "failed"
    assert "the repository cipher is none" in clear.detail


def test_retention_below_policy_fails_the_drill_naming_it(scenario: tuple[Path, Repo]) -> None:
    root, repo = scenario
    drill_config(
        root,
        repo,
        targets='recovery_targets = ["latest"]',
        extra="[databases.postgres.pgbackrest.policy]\nretention_full = 4\nretention_diff = 2\n"
        'full_max_age = "7d"\ndiff_max_age = "1d"\nencryption = false\n',
    )
    before = tree_digest(repo.folder / "repo")
    result = run_cli("run", "--config", str(root / "drills.toml"), workdir=root / "work", timeout=300)
    assert result.returncode == 1, result.output
    assert tree_digest(repo.folder / "repo") == before, "a drill must never write to the repository"
    (path,) = (root / "reports" / "evidence").glob("*.json")
    record = json.loads(path.read_text())
    found = {c["name"]: c for c in record["checks"] if c["name"].startswith("policy_")}
    assert set(found) == {"policy_retention", "policy_full_age", "policy_diff_age"}
    assert found["policy_retention"]["outcome"] == "failed"
    assert "repo1-retention-full=2 keeps 2 full set(s), below the policy's 4" in found["policy_retention"]["detail"]
    assert found["policy_full_age"]["outcome"] == found["policy_diff_age"]["outcome"] == "passed"
    assert record["verdict"] == "failed"
    assert record["reason"].startswith("policy_retention: ")  # every data check passed: the policy is the finding
    storage = record["storage"]
    assert storage["storage"].startswith("block volume")
    wal = sum(p.stat().st_size for p in repo.segments())
    assert storage["size_bytes"] > wal > 0
    assert "Traceback" not in result.output
