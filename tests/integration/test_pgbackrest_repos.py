"""Encrypted and S3 repositories, and the PITR property: a restore to any time holds exactly the rows
committed at or before it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restoredrill import pgtools, proc
from restoredrill.errors import CouldNotVerify
from restoredrill.layers.pgbackrest import rows_at
from restoredrill.layers.pgbackrest_repo import PgBackRest
from tests.conftest import MotoServer, leftovers, run_cli, traversable_tempdir
from tests.pgbackrest_support import Repo, build_repo, drill_config, tls_front

pytestmark = pytest.mark.integration
PASSPHRASE = "cipher-Passphrase-7Kq2"  # noqa: S105 - planted to prove it never leaks


def _run(root: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli("run", "--config", str(root / "drills.toml"), workdir=root / "work", timeout=300, env=env)


def _record(root: Path) -> dict:
    (path,) = (root / "reports" / "evidence").glob("*.json")
    return json.loads(path.read_text())


def _no_secret_anywhere(root: Path, output: str, secret: str) -> None:
    assert secret not in output
    for path in (root / "reports").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


@pytest.fixture(scope="module")
def encrypted() -> Repo:
    return build_repo("pgbr-enc", config_extra=f"repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={PASSPHRASE}\n")


@pytest.fixture
def case(encrypted: Repo) -> Iterator[tuple[Path, Repo]]:
    root = traversable_tempdir("rd-enc-case-")
    repo = encrypted.clone(root)
    # The drill gets the passphrase from the environment only: remove it from the config file.
    repo.config.write_text("".join(ln for ln in repo.config.read_text().splitlines(True) if "cipher-pass" not in ln))
    yield root, repo
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.xdist_group("pgbackrest-encrypted")
class TestEncryptedRepository:
    def test_passphrase_from_the_environment_restores_and_never_shows(self, case: tuple[Path, Repo]) -> None:
        root, repo = case
        drill_config(root, repo, targets='recovery_targets = ["latest"]', extra='cipher_pass_env = "DRILL_CIPHER"')
        result = _run(root, {"DRILL_CIPHER": PASSPHRASE})
        assert result.returncode == 0, result.output
        record = _record(root)
        assert record["verdict"] == "passed"
        assert record["rpo_detail"]["cipher"] == "aes-256-cbc"
        _no_secret_anywhere(root, result.output, PASSPHRASE)
        assert leftovers(root / "work") == []

    def test_wrong_passphrase_could_not_verify_with_a_sentence(self, case: tuple[Path, Repo]) -> None:
        root, repo = case
        drill_config(root, repo, targets='recovery_targets = ["latest"]', extra='cipher_pass_env = "DRILL_CIPHER"')
        result = _run(root, {"DRILL_CIPHER": "not-the-" + PASSPHRASE})
        assert result.returncode == 3, result.output
        reason = _record(root)["reason"]
        assert "wrong cipher passphrase" in reason
        _no_secret_anywhere(root, result.output, "not-the-" + PASSPHRASE)
        assert "Traceback" not in result.output

    def test_passphrase_variable_missing_is_one_sentence(self, case: tuple[Path, Repo]) -> None:
        root, repo = case
        drill_config(root, repo, targets='recovery_targets = ["latest"]', extra='cipher_pass_env = "NO_SUCH_VAR"')
        result = _run(root)
        assert result.returncode == 3, result.output
        assert "the cipher passphrase variable NO_SUCH_VAR is not set" in _record(root)["reason"]


@pytest.fixture
def tls_s3(moto: MotoServer) -> Iterator[tuple[int, Path]]:
    """moto behind stunnel (see tls_front)."""
    with tls_front(int(moto.endpoint.rsplit(":", 1)[1])) as front:
        yield front


@pytest.mark.xdist_group("pgbackrest-s3")
def test_s3_repository_behind_tls_restores(moto: MotoServer, tls_s3: tuple[int, Path]) -> None:
    port, ca = tls_s3
    bucket = f"pgbackrest-{uuid.uuid4().hex[:8]}"
    moto.client().create_bucket(Bucket=bucket)
    s3 = (
        f"repo1-type=s3\nrepo1-s3-bucket={bucket}\nrepo1-s3-endpoint=localhost\nrepo1-storage-port={port}\n"
        "repo1-s3-region=us-east-1\nrepo1-s3-uri-style=path\n"
        f"repo1-storage-ca-file={ca}\nrepo1-s3-key=testing-key\nrepo1-s3-key-secret=s3-Secret-Value-9\n"
    )
    repo = build_repo("pgbr-s3", config_extra=s3)
    assert moto.client().list_objects_v2(Bucket=bucket)["KeyCount"] > 0, "the sets live in the bucket"
    root = traversable_tempdir("rd-s3-case-")
    try:
        drill_config(root, repo, targets='recovery_targets = ["latest", "time"]')
        result = _run(root)
        assert result.returncode == 0, result.output
        for path in (root / "reports" / "evidence").glob("*.json"):
            assert json.loads(path.read_text())["verdict"] == "passed"
        _no_secret_anywhere(root, result.output, "s3-Secret-Value-9")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(repo.folder.parent, ignore_errors=True)


@pytest.mark.xdist_group("pgbackrest-plain")
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=1.0))
def test_pitr_holds_exactly_the_rows_committed_at_or_before_the_target(
    pgbackrest_template: Repo, workdir: Path, fraction: float
) -> None:
    commits = pgbackrest_template.ledger_commits
    assert commits, "the source recorded commit timestamps (track_commit_timestamp)"
    run_as = proc.RunAs.for_server()
    lock = traversable_tempdir("rd-prop-")
    try:
        repo = PgBackRest(
            pgbackrest_template.stanza,
            config=pgbackrest_template.config,
            options=[],
            cipher_pass_env=None,
            workdir=lock,
            run_as=run_as,
        )
        info = repo.info()
        low = info.backups[0].stopped_at + timedelta(seconds=1)
        # The domain ends just BEFORE the last commit: PostgreSQL stops at a time target only on a commit
        # after it, so a later target has its own outcome (test_a_target_after_the_last_commit_...).
        high = max(commits.values()) - timedelta(milliseconds=1)
        target = low + (high - low) * fraction
        found = rows_at(
            repo,
            pgtools.bindir_for(15),
            target,
            "public.ledger",
            "id",
            dbname="postgres",
            run_id="property",
            base=workdir,
            run_as=run_as,
            superuser="postgres",
            timeout=120,
        )
    finally:
        shutil.rmtree(lock, ignore_errors=True)
    expected = {i for i, at in commits.items() if at <= target}
    assert found == expected, (
        f"target {target}: missing {sorted(expected - found)[:5]}, extra {sorted(found - expected)[:5]}"
    )
    assert leftovers(workdir) == []


@pytest.mark.xdist_group("pgbackrest-plain")
def test_a_target_after_the_last_commit_is_named_as_such_not_as_missing_wal(
    pgbackrest_template: Repo, workdir: Path
) -> None:
    """Every segment is there, but nothing committed after the target: PostgreSQL says "recovery ended before
    configured recovery target was reached", exactly as for missing WAL. The drill must say what happened."""
    run_as = proc.RunAs.for_server()
    lock = traversable_tempdir("rd-late-")
    repo = PgBackRest(
        pgbackrest_template.stanza,
        config=pgbackrest_template.config,
        options=[],
        cipher_pass_env=None,
        workdir=lock,
        run_as=run_as,
    )
    target = datetime.now(UTC)  # after the template's last commit and its last archived segment
    try:
        with pytest.raises(CouldNotVerify) as raised:
            rows_at(
                repo,
                pgtools.bindir_for(15),
                target,
                "public.ledger",
                "id",
                dbname="postgres",
                run_id="late-target",
                base=workdir,
                run_as=run_as,
                superuser="postgres",
                timeout=120,
            )
    finally:
        shutil.rmtree(lock, ignore_errors=True)
    message = str(raised.value)
    assert "no transaction was committed after the PITR target" in message, message
    last = max(pgbackrest_template.ledger_commits.values())
    assert f"committed at {last.astimezone(UTC):%Y-%m-%dT%H:%M}" in message, message
    assert leftovers(workdir) == []
