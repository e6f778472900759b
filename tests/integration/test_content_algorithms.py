"""Content hashes with each algorithm, through the real backup job and the real drill: manifests of the current
format (hashtextextended-sum) and manifests as the release before wrote them (format /1, no algorithm field,
md5-64-sum) both pass a healthy restore and both FAIL, naming the table, when a row differs at the same count.
A manifest naming an algorithm this release does not know could not be verified: never passed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from restoredrill import manifest as manifest_mod
from restoredrill import pgtools
from restoredrill.backup import backup_logical
from restoredrill.demo import add_day_of_orders, load_shop
from restoredrill.manifest import HASHTEXTEXTENDED_SUM, MD5_64_SUM
from restoredrill.targets.local import LocalInstance
from tests.conftest import DrillScenario, leftovers, traversable_tempdir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def source() -> Iterator[tuple[LocalInstance, str]]:
    base = traversable_tempdir("rd-hash-source-")
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    with LocalInstance(bindir, run_id="test-hash-source", base=base, label="test-hash-source") as instance:
        dsn = load_shop(instance)
        add_day_of_orders(instance, datetime.now(UTC))
        yield instance, dsn
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def scenario(workdir: Path) -> Iterator[DrillScenario]:
    root = traversable_tempdir("rd-hash-drill-")
    yield DrillScenario(root, root / "backups", workdir)
    shutil.rmtree(root, ignore_errors=True)


def back_up(source: tuple[LocalInstance, str], scenario: DrillScenario, algorithm: str | None = None) -> Path:
    backup_logical(source[1], f"file://{scenario.prefix}/", sse=None, content_algorithm=algorithm, log=lambda _m: None)
    return scenario.newest()


def read_manifest(dump: Path) -> dict:
    return json.loads(dump.with_suffix(".manifest.json").read_text())


def rewrite_manifest(dump: Path, manifest: dict) -> None:
    """As the backup job writes a manifest: its SHA-256 recorded in the dump's metadata."""
    text = json.dumps(manifest, indent=1, sort_keys=True)
    dump.with_suffix(".manifest.json").write_text(text)
    meta_path = dump.with_name(dump.name + ".meta.json")
    meta = json.loads(meta_path.read_text())
    meta["manifest-sha256"] = hashlib.sha256(text.encode()).hexdigest()
    meta_path.write_text(json.dumps(meta))


def as_the_release_before_wrote_it(dump: Path) -> None:
    manifest = read_manifest(dump)
    assert manifest["format"] == "restoredrill-manifest/1"
    assert manifest.pop("content_algorithm") == MD5_64_SUM
    rewrite_manifest(dump, manifest)


def claim_one_altered_order(source: tuple[LocalInstance, str], dump: Path, algorithm: str) -> None:
    """The manifest holds the sum of public.orders with one amount changed (same count): the dump and the
    manifest disagree on one row's content, as when a dump lost an update its manifest saw."""
    connection = source[0].connection
    assert connection is not None
    with connection.connect("shop") as conn:
        conn.autocommit = False
        conn.execute("UPDATE orders SET amount = amount + 1 WHERE id = (SELECT min(id) FROM orders)")
        manifest_mod.use_content_settings(conn)
        altered = manifest_mod.content_hash(conn, "public.orders", algorithm)
        conn.rollback()
    manifest = read_manifest(dump)
    assert manifest["content"]["public.orders"] != altered
    manifest["content"]["public.orders"] = altered
    rewrite_manifest(dump, manifest)


def content_check(scenario: DrillScenario) -> dict:
    return next(c for c in scenario.record()["checks"] if c["name"] == "manifest_content")


def test_the_backup_job_writes_hashtextextended_and_a_healthy_restore_passes(
    source: tuple[LocalInstance, str], scenario: DrillScenario
) -> None:
    dump = back_up(source, scenario)
    manifest = read_manifest(dump)
    assert manifest["format"] == "restoredrill-manifest/2"
    assert manifest["content_algorithm"] == HASHTEXTEXTENDED_SUM
    assert set(manifest["content"]) == set(manifest["row_counts"])
    scenario.write_config(extra="require_manifest = true")
    result = scenario.run()
    assert result.returncode == 0, result.output
    assert scenario.record()["verdict"] == "passed"
    check = content_check(scenario)
    assert check["outcome"] == "passed"
    assert "(content hashes, hashtextextended-sum;" in check["detail"]
    assert check["sql"] == manifest_mod.content_hash_sql_shown(HASHTEXTEXTENDED_SUM)
    assert 'hashtextextended(t::text COLLATE "C", 0)' in check["sql"]
    assert leftovers(scenario.workdir) == []


def test_a_manifest_of_the_release_before_still_verifies_a_healthy_restore(
    source: tuple[LocalInstance, str], scenario: DrillScenario
) -> None:
    dump = back_up(source, scenario, MD5_64_SUM)
    as_the_release_before_wrote_it(dump)
    scenario.write_config(extra="require_manifest = true")
    result = scenario.run()
    assert result.returncode == 0, result.output
    assert scenario.record()["verdict"] == "passed"
    check = content_check(scenario)
    assert check["outcome"] == "passed"
    assert "(content hashes, md5-64-sum;" in check["detail"]
    assert check["sql"] == manifest_mod.content_hash_sql_shown(MD5_64_SUM)
    assert "md5(t::text)" in check["sql"]


@pytest.mark.parametrize("old_format", [False, True], ids=["hashtextextended-sum", "release-before-md5"])
def test_an_altered_row_at_the_same_count_fails_with_either_algorithm(
    source: tuple[LocalInstance, str], scenario: DrillScenario, old_format: bool
) -> None:
    algorithm = MD5_64_SUM if old_format else HASHTEXTEXTENDED_SUM
    dump = back_up(source, scenario, algorithm)
    if old_format:
        as_the_release_before_wrote_it(dump)
    claim_one_altered_order(source, dump, algorithm)
    scenario.write_config()
    result = scenario.run()
    assert result.returncode == 1, result.output
    record = scenario.record()
    assert record["verdict"] == "failed"
    assert record["reason"] == (
        "manifest_content: table content differs from the manifest: public.orders: rows differ from backup time"
    )
    check = content_check(scenario)
    assert check["outcome"] == "failed"
    assert check["sql"] == manifest_mod.content_hash_sql_shown(algorithm)
    counts = next(c for c in record["checks"] if c["name"] == "manifest_row_counts")
    assert counts["outcome"] == "passed"  # the same counts: only the content hash sees it


def test_an_unknown_algorithm_could_not_verify_never_passes(
    source: tuple[LocalInstance, str], scenario: DrillScenario
) -> None:
    dump = back_up(source, scenario)
    manifest = read_manifest(dump)
    manifest["content_algorithm"] = "sha3-xor-sum"
    rewrite_manifest(dump, manifest)
    scenario.write_config()
    result = scenario.run()
    assert result.returncode == 3, result.output
    record = scenario.record()
    assert record["verdict"] == "could_not_verify"
    check = content_check(scenario)
    assert check["outcome"] == "error"
    assert check["detail"].startswith(
        "the manifest's content hashes use algorithm 'sha3-xor-sum', which this restoredrill does not know"
    )
    assert record["reason"].startswith("manifest_content: the manifest's content hashes use algorithm 'sha3-xor-sum'")
    others = {c["name"]: c["outcome"] for c in record["checks"] if c["name"].startswith("manifest_")}
    assert others == {"manifest_row_counts": "passed", "manifest_structure": "passed", "manifest_content": "error"}
