"""The layer-1 backup job against a real PostgreSQL and a moto S3 server over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from restoredrill import pgtools
from restoredrill.demo import add_day_of_orders, load_shop
from restoredrill.layers.logical_keys import dump_key
from restoredrill.targets.local import LocalInstance
from tests.conftest import AWS_SECRET, DrillScenario, MotoServer, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration


class Source:
    def __init__(self, instance: LocalInstance, dsn: str) -> None:
        self.instance = instance
        self.dsn = dsn


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    base = traversable_tempdir("rd-source-")
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    with LocalInstance(bindir, run_id="test-source", base=base, label="test-source") as instance:
        dsn = load_shop(instance)
        add_day_of_orders(instance, datetime.now(UTC))
        yield Source(instance, dsn)
    base.rmdir()


def _keep_writing(source: Source, stop: threading.Event) -> None:
    """Concurrent writes while the backup runs: the manifest must still match the dump exactly."""
    assert source.instance.connection is not None
    with source.instance.connection.connect("shop") as conn:
        while not stop.is_set():
            conn.execute("INSERT INTO orders (user_id, amount, created_at) VALUES (1, 9.99, now())")


def test_backup_to_s3_with_sse_metadata_and_manifest_then_the_drill_passes(
    moto: MotoServer, source: Source, drill: DrillScenario
) -> None:
    s3 = moto.client()
    bucket = f"backups-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    stop = threading.Event()
    writer = threading.Thread(target=_keep_writing, args=(source, stop))
    writer.start()
    try:
        result = run_cli(
            "backup",
            "logical",
            "--dbname",
            source.dsn,
            "--to",
            f"s3://{bucket}/postgres/logical/",
            "--endpoint-url",
            moto.endpoint,
            "--sse",
            "AES256",
        )
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.output
    assert source.instance.connection is not None
    assert source.instance.connection.password not in result.output
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    dump = next(k for k in keys if k.endswith(".dump"))
    assert dump.startswith("postgres/logical/")
    assert "/shop-" in dump
    head = s3.head_object(Bucket=bucket, Key=dump)
    assert head["ServerSideEncryption"] == "AES256"
    meta = head["Metadata"]
    assert meta["db"] == "shop"
    assert meta["server-version"].startswith("15.")
    assert meta["pg-dump-version"].startswith("15.")
    body = s3.get_object(Bucket=bucket, Key=dump)["Body"].read()
    assert meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert int(meta["size-bytes"]) == len(body)
    manifest_key = dump.removesuffix(".dump") + ".manifest.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["dump"]["sha256"] == meta["sha256"]
    assert manifest["row_counts"]["public.users"] == 2000
    assert s3.head_object(Bucket=bucket, Key=manifest_key)["ServerSideEncryption"] == "AES256"

    drill.write_config(
        source=f"s3://{bucket}/postgres/logical/",
        extra=f'endpoint_url = "{moto.endpoint}"\nregion = "us-east-1"\nrequire_manifest = true',
    )
    run = drill.run()
    assert run.returncode == 0, run.output
    record = drill.record()
    assert record["verdict"] == "passed"
    assert record["backup"]["location"] == f"s3://{bucket}/{dump}"
    counts = next(c for c in record["checks"] if c["name"] == "manifest_row_counts")
    assert counts["outcome"] == "passed"  # same snapshot as the dump despite concurrent writes
    assert AWS_SECRET not in run.output


def test_backup_with_kms_encryption(moto: MotoServer, source: Source) -> None:
    s3 = moto.client()
    bucket = f"kms-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    result = run_cli(
        "backup",
        "logical",
        "--dbname",
        source.dsn,
        "--to",
        f"s3://{bucket}/pg/",
        "--endpoint-url",
        moto.endpoint,
        "--sse",
        "aws:kms",
        "--kms-key-id",
        "alias/backups",
    )
    assert result.returncode == 0, result.output
    dump = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith(".dump"))
    head = s3.head_object(Bucket=bucket, Key=dump)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert "alias/backups" in head.get("SSEKMSKeyId", "")


def _plant(folder: Path, database: str, taken_at: datetime) -> str:
    key = dump_key("", database, taken_at)
    (folder / key).parent.mkdir(parents=True, exist_ok=True)
    (folder / key).write_bytes(b"old dump")
    return key


def test_retention_prunes_old_date_folders_but_never_the_newest_dumps(source: Source, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    now = datetime.now(UTC)
    old = _plant(store, "shop", now - timedelta(days=45))
    recent = _plant(store, "shop", now - timedelta(days=10))
    lonely = _plant(store, "archive", now - timedelta(days=60))  # the only dump of another database
    (store / "README.txt").write_text("not ours")

    dry = run_cli("backup", "logical", "--dbname", source.dsn, "--to", f"file://{store}/", "--dry-run")
    assert dry.returncode == 0, dry.output
    assert f"dry run: would delete file://{store}/{old}" in dry.output
    assert all((store / k).exists() for k in (old, recent, lonely))
    assert not list(store.glob(f"{now:%Y-%m-%d}/*.dump")), "a dry run uploads nothing"

    real = run_cli("backup", "logical", "--dbname", source.dsn, "--to", f"file://{store}/", "--retention-days", "30")
    assert real.returncode == 0, real.output
    assert not (store / old).exists()
    assert not (store / old).parent.exists()
    assert (store / recent).exists()
    assert (store / lonely).exists(), "the newest dump of a database is never pruned"
    assert (store / "README.txt").exists(), "keys outside the layout are never touched"
    assert list(store.glob(f"{now:%Y-%m-%d}/shop-*.dump"))


def test_backup_of_an_unreachable_database_is_one_sentence(tmp_path: Path) -> None:
    result = run_cli(
        "backup",
        "logical",
        "--dbname",
        "host=127.0.0.1 port=1 dbname=x password=hunter22",
        "--to",
        f"file://{tmp_path}/",
    )
    assert result.returncode == 3
    assert "cannot connect to the source database" in result.output
    assert "hunter22" not in result.output
    assert "Traceback" not in result.output


def test_dry_run_to_a_new_file_store_verifies_and_writes_nothing(source: Source, tmp_path: Path) -> None:
    store = tmp_path / "not-yet"
    dry = run_cli("backup", "logical", "--dbname", source.dsn, "--to", f"file://{store}/", "--dry-run")
    assert dry.returncode == 0, dry.output
    assert "backup verified (dry run)" in dry.output
    assert "would delete" not in dry.output
    assert not store.exists(), "a dry run creates nothing"
