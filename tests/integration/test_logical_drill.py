"""The logical drill end to end, through the CLI: it passes on healthy backups and FAILS, naming the
defect, on broken ones. Every scenario also proves the drill left nothing behind and printed no traceback.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import (
    AWS_SECRET,
    Completed,
    DrillScenario,
    free_port,
    leftovers,
    listening_ports_of,
    start_moto,
)

pytestmark = pytest.mark.integration


def assert_clean(drill: DrillScenario, result: Completed) -> None:
    assert "Traceback" not in result.output, result.output
    assert AWS_SECRET not in result.output
    assert leftovers(drill.workdir) == []
    assert listening_ports_of(drill.workdir) == []
    for path in drill.reports.rglob("*"):
        if path.is_file():
            assert AWS_SECRET not in path.read_text(errors="replace"), path


def check(record: dict, name: str) -> dict:
    return next(c for c in record["checks"] if c["name"] == name)


def test_healthy_backups_pass_every_check(drill: DrillScenario) -> None:
    drill.write_config(
        extra=(
            "require_manifest = true\n"
            '[[databases.shop.checks.min_rows]]\ntable = "public.users"\nmin = 2000\n'
            '[[databases.shop.checks.freshness]]\ntable = "public.orders"\ncolumn = "created_at"\n'
            '[[databases.shop.checks.sql]]\nname = "paid orders exist"\n'
            "sql = \"SELECT count(*) > 0 FROM orders WHERE status = 'paid'\"\nexpect = true\n"
        )
    )
    result = drill.run()
    assert result.returncode == 0, result.output
    record = drill.record()
    assert record["verdict"] == "passed"
    assert record["reason"] is None
    outcomes = {c["name"]: c["outcome"] for c in record["checks"]}
    expected = {
        "restore",
        "rpo_newest_age",
        "rpo_largest_gap",
        "rto",
        "restore_errors",
        "toc_tables",
        "manifest_row_counts",
        "manifest_structure",
        "manifest_content",
        "matviews_populated",
        "amcheck",
        "sequences",
        "min_rows:public.users",
        "freshness:public.orders.created_at",
        "sql:paid orders exist",
        "test_shop.py::test_every_paid_order_has_an_invoice",  # the demo's own test, written with `restored`
        "drift",
    }
    assert set(outcomes) == expected
    # a first drill has no earlier one to compare with: drift records the baseline, and never claims a pass
    assert outcomes.pop("drift") == "not_applicable"
    assert set(outcomes.values()) == {"passed"}
    assert record["backup"]["sha256"] == record["backup"]["sha256_expected"]
    assert record["rto_s"] > 0
    assert record["stages"]["restore_s"] > 0
    assert record["largest_tables"][0]["table"] == "public.orders"
    assert (drill.reports / "junit").is_dir()
    assert any((drill.reports / "allure-results").iterdir())
    assert_clean(drill, result)


def test_truncated_dump_fails(drill: DrillScenario) -> None:
    newest = drill.newest()
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    assert "truncated" in record["reason"]
    assert_clean(drill, result)


def test_truncated_dump_from_another_tool_fails_on_restore_errors(drill: DrillScenario) -> None:
    """Without any recorded checksum, pg_restore's own errors must still fail the drill."""
    newest = drill.newest()
    for sidecar in newest.parent.glob("*.json"):
        sidecar.unlink()
    data = newest.read_bytes()
    newest.write_bytes(data[: int(len(data) * 0.7)])
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    assert check(record, "restore_errors")["outcome"] == "failed"
    restore = check(record, "restore")
    assert restore["outcome"] == "failed"  # pg_restore exited non-zero: the restore did not succeed
    assert restore["detail"].startswith("pg_restore exited 1 restoring ")
    assert record["reason"].startswith("restore: pg_restore exited 1")
    assert_clean(drill, result)


def test_one_flipped_byte_fails_on_checksum(drill: DrillScenario) -> None:
    newest = drill.newest()
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    assert record["reason"].startswith("checksum mismatch")
    assert check(record, "restore")["outcome"] == "failed"
    assert_clean(drill, result)


def record_manifest(dump: Path, manifest: dict) -> None:
    """Write a manifest as the backup job would have: its SHA-256 recorded in the dump's metadata."""
    text = json.dumps(manifest)
    dump.with_suffix(".manifest.json").write_text(text)
    meta_path = dump.with_name(dump.name + ".meta.json")
    meta = json.loads(meta_path.read_text())
    meta["manifest-sha256"] = hashlib.sha256(text.encode()).hexdigest()
    meta_path.write_text(json.dumps(meta))


def test_dump_disagreeing_with_its_manifest_names_the_table_and_the_index(drill: DrillScenario) -> None:
    """The backup job's dump lost rows and an index its manifest saw (the manifest itself is intact)."""
    manifest = json.loads(drill.newest().with_suffix(".manifest.json").read_text())
    real_orders = manifest["row_counts"]["public.orders"]
    manifest["row_counts"]["public.orders"] = real_orders + 5
    ghost = "CREATE INDEX orders_amount_idx ON public.orders USING btree (amount)"
    manifest["structure"]["indexes"].append(ghost)
    record_manifest(drill.newest(), manifest)
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    counts = check(record, "manifest_row_counts")
    assert counts["outcome"] == "failed"
    assert f"public.orders: manifest {real_orders + 5} rows, restored {real_orders} (-5)" in counts["detail"]
    structure = check(record, "manifest_structure")
    assert structure["outcome"] == "failed"
    assert f"missing index: {ghost}" in structure["detail"]
    assert record["reason"].startswith("manifest_row_counts: row counts differ")
    assert_clean(drill, result)


def test_manifest_edited_after_the_backup_fails(drill: DrillScenario) -> None:
    manifest_path = drill.newest().with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["row_counts"]["public.orders"] += 1
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    assert record["reason"].startswith("the manifest was changed after the backup: its sha256 is")
    assert record["backup"]["manifest_sha256"] != record["backup"]["manifest_sha256_expected"]
    assert_clean(drill, result)


def test_healthy_manifest_checksum_is_recorded_and_matches(drill: DrillScenario) -> None:
    newest = drill.newest()
    text = newest.with_suffix(".manifest.json").read_bytes()
    meta = json.loads(newest.with_name(newest.name + ".meta.json").read_text())
    assert meta["manifest-sha256"] == hashlib.sha256(text).hexdigest()
    assert meta["source-database"] == "shop"


def test_another_dump_swapped_in_is_named_as_such(drill: DrillScenario) -> None:
    dumps = drill.dumps()
    shutil.copyfile(dumps[0], dumps[-1])  # three days older, a complete and valid archive of the same database
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    reason = drill.record()["reason"]
    assert reason.startswith("not the dump the backup job wrote: size ")
    assert f"vs {json.loads(dumps[-1].with_name(dumps[-1].name + '.meta.json').read_text())['size-bytes']}" in reason
    assert "sha256 " in reason
    assert_clean(drill, result)


def test_a_configured_table_missing_after_the_restore_is_a_defect(drill: DrillScenario) -> None:
    drill.write_config(extra='[[databases.shop.checks.min_rows]]\ntable = "public.payments"\nmin = 1\n')
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    payments = check(record, "min_rows:public.payments")
    assert payments["outcome"] == "failed"
    assert payments["detail"] == "public.payments is missing after the restore: the backup does not hold it"
    assert_clean(drill, result)


def test_no_dump_under_the_prefix_fails(drill: DrillScenario) -> None:
    empty = drill.root / "empty"
    empty.mkdir()
    drill.write_config(source=f"file://{empty}/")
    result = drill.run()
    assert result.returncode == 1, result.output
    assert "no dump of 'shop' found under" in drill.record()["reason"]
    assert_clean(drill, result)


def test_newest_dump_older_than_the_rpo_fails_as_stale(drill: DrillScenario) -> None:
    for dump in drill.dumps()[-2:]:  # the last two days' dumps never happened
        dump.unlink()
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    age = check(record, "rpo_newest_age")
    assert age["outcome"] == "failed"
    assert "the backups are stale" in age["detail"]
    assert check(record, "restore")["outcome"] == "passed"  # the stale dump itself still restores
    assert record["verdict"] == "failed"
    assert_clean(drill, result)


def test_a_missing_day_in_the_retention_window_fails(drill: DrillScenario) -> None:
    dumps = drill.dumps()
    dumps[1].unlink()
    drill.write_config()
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    gap = check(record, "rpo_largest_gap")
    assert gap["outcome"] == "failed"
    assert "is 2d" in gap["detail"]
    assert "dumps are missing" in gap["detail"]
    assert record["rpo_detail"]["largest_gap_s"] == pytest.approx(2 * 86400)
    assert_clean(drill, result)


def _strip_sidecars(dump: Path) -> None:
    for sidecar in dump.parent.glob("*.json"):
        sidecar.unlink()


def test_dump_from_a_newer_server_is_refused_with_a_sentence(drill: DrillScenario) -> None:
    newest = drill.newest()
    _strip_sidecars(newest)
    data = newest.read_bytes()
    assert b"15." in data
    newest.write_bytes(data.replace(b"15.", b"99.", 1))  # "Dumped from database version: 99.x"
    drill.write_config()
    result = drill.run()
    assert result.returncode == 3, result.output
    record = drill.record()
    assert record["verdict"] == "could_not_verify"
    assert "comes from PostgreSQL 99, newer than every server available here" in record["reason"]
    assert_clean(drill, result)


def test_archive_format_newer_than_pg_restore_is_refused(drill: DrillScenario) -> None:
    newest = drill.newest()
    _strip_sidecars(newest)
    data = bytearray(newest.read_bytes())
    assert data[:5] == b"PGDMP"
    data[6] = 16  # archive format 1.16, as written by pg_dump 17
    newest.write_bytes(bytes(data))
    drill.write_config()
    result = drill.run()
    assert result.returncode == 3, result.output
    assert "comes from a newer pg_dump" in drill.record()["reason"]
    assert_clean(drill, result)


def test_wrong_s3_credentials_could_not_verify(drill: DrillScenario) -> None:
    strict = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # every request must carry a known key
    try:
        drill.write_config(
            source="s3://backups/postgres/logical/", extra=f'endpoint_url = "{strict.endpoint}"\nregion = "us-east-1"'
        )
        result = drill.run()
    finally:
        strict.process.terminate()
    assert result.returncode == 3, result.output
    record = drill.record()
    assert record["verdict"] == "could_not_verify"
    assert "S3 refused the credentials (InvalidAccessKeyId)" in record["reason"]
    assert_clean(drill, result)


def test_unreachable_endpoint_could_not_verify(drill: DrillScenario) -> None:
    drill.write_config(
        source="s3://backups/postgres/logical/",
        extra=f'endpoint_url = "http://127.0.0.1:{free_port()}"\nregion = "us-east-1"',
    )
    result = drill.run()
    assert result.returncode == 3, result.output
    assert "cannot reach the S3 endpoint" in drill.record()["reason"]
    assert_clean(drill, result)


def test_malformed_config_is_one_sentence_and_exit_2(drill: DrillScenario) -> None:
    path = drill.write_config()
    path.write_text(path.read_text().replace('rpo = "26h"', 'rpo = "soon"'))
    result = drill.run()
    assert result.returncode == 2
    assert result.output.strip().count("\n") == 0, result.output
    assert "'objectives.logical.rpo' 'soon' is not a duration" in result.output
    assert not drill.reports.exists()
    assert_clean(drill, result)


def test_missing_server_binaries_could_not_verify(drill: DrillScenario) -> None:
    path = drill.write_config()
    path.write_text(path.read_text().replace("[target]\n", f'[target]\npg_bindir = "{drill.root}/nowhere"\n'))
    result = drill.run()
    assert result.returncode == 3, result.output
    assert "no PostgreSQL server binaries found" in drill.record()["reason"]
    assert_clean(drill, result)


def test_databases_in_parallel_restore_once_each(drill: DrillScenario) -> None:
    """With pytest-xdist, all items of one database stay on one worker: one restore, one complete record."""
    drill.write_config(
        extra=f'\n[databases.shop_copy.logical]\nsource = "file://{drill.prefix}/"\ndump_name = "shop"\n'
    )
    result = drill.run("-n", "2")
    assert result.returncode == 0, result.output
    records = sorted((drill.reports / "evidence").glob("*.json"))
    assert len(records) == 2
    for path in records:
        record = json.loads(path.read_text())
        assert record["verdict"] == "passed"
        # 13 built-in checks (drift records its baseline as not applicable on a first drill); the demo's own
        # test (drills/test_shop.py) is the 14th of a database called shop
        assert len(record["checks"]) == (14 if record["database"] == "shop" else 13), record["checks"]
        assert record["notes"] == []
    assert_clean(drill, result)


def test_selecting_some_checks_is_recorded_as_a_partial_drill(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run("-k", "amcheck")
    assert result.returncode == 4, result.output  # PARTIAL: never a whole pass
    record = drill.record()
    assert [c["name"] for c in record["checks"]] == ["amcheck"]
    assert record["verdict"] == "partial"
    assert len(record["left_out"]) == 13  # the restore, 11 other built-in checks and drills/test_shop.py's
    assert record["reason"].startswith("partial drill: 13 of 14 checks did not run")


def test_healthy_dump_from_another_tool_passes_without_a_manifest(drill: DrillScenario) -> None:
    _strip_sidecars(drill.newest())
    drill.write_config()
    result = drill.run()
    assert result.returncode == 0, result.output
    record = drill.record()
    assert record["verdict"] == "passed"
    outcomes = {c["name"]: c["outcome"] for c in record["checks"]}
    assert outcomes["manifest_row_counts"] == "not_applicable"  # shown as such, never counted as passed
    assert all(outcomes[name] == "passed" for name in ("restore", "toc_tables", "amcheck", "sequences"))
    assert any("no checksum recorded" in note for note in record["notes"])

    shutil.rmtree(drill.reports)
    drill.write_config(extra="require_manifest = true")
    strict = drill.run()
    assert strict.returncode == 1, strict.output
    record = drill.record()
    assert record["verdict"] == "failed"
    assert "has no manifest" in record["reason"]


URL_SECRET, SQL_SECRET = "Url-Secret-91x", "Pw-Secret-92x"  # planted to prove they never leak


def test_secrets_in_custom_sql_checks_reach_no_sink(drill: DrillScenario) -> None:
    """A URL password and a `password = '...'` literal in a team's check SQL, both failing so their SQL and
    detail travel everywhere: stdout, JUnit XML, every Allure result and attachment, evidence, HTML report."""
    drill.write_config(
        extra=(
            '[[databases.shop.checks.sql]]\nname = "url"\n'
            f"sql = \"SELECT 'postgresql://reader:{URL_SECRET}@db.internal/shop'\"\nexpect = 1\n"
            '[[databases.shop.checks.sql]]\nname = "password literal"\n'
            f"sql = \"SELECT count(*) FROM (SELECT 'x' AS password) t WHERE password = '{SQL_SECRET}'\"\n"
            "expect = 1\n"
        )
    )
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert check(record, "sql:url")["outcome"] == "failed"
    assert check(record, "sql:password literal")["outcome"] == "failed"
    sinks = [p for p in drill.reports.rglob("*") if p.is_file()]
    kinds = {p.parent.name for p in sinks} | {p.suffix for p in sinks}
    assert {"junit", "allure-results", "evidence", ".html"} <= kinds, kinds
    attachments = [p for p in (drill.reports / "allure-results").glob("*-attachment*")]
    assert any("postgresql://reader:***@db.internal" in p.read_text(errors="replace") for p in attachments)
    for secret in (URL_SECRET, SQL_SECRET):
        assert secret not in result.output
        for path in sinks:
            assert secret not in path.read_text(errors="replace"), (secret, path)
    assert_clean(drill, result)


def test_inherited_libpq_variables_never_redirect_a_drill(drill: DrillScenario) -> None:
    """A shell pointed at production (PGHOSTADDR overrides the host libpq is given, PGSERVICE names another
    server, PGSSLMODE=require refuses a loopback server without TLS): the drill still reaches only its own
    throwaway server. Every address here is on this machine's loopback range."""
    drill.write_config()
    inherited = {
        "PGHOSTADDR": "127.0.0.2",
        "PGSERVICE": "restoredrill-no-such-service",
        "PGSSLMODE": "require",
        "DATABASE_URL": "postgresql://app@127.0.0.2/shop",
    }
    result = drill.run(env=inherited)
    assert result.returncode == 0, result.output
    assert drill.record()["verdict"] == "passed"
    assert "ignoring the inherited PGHOSTADDR" in result.output
