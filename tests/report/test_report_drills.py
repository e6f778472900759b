"""Reports of REAL drills (real PostgreSQL restores through the CLI), read in Chromium: healthy, failing
and could-not-verify runs; secrets planted in the configuration and the environment reach no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import AWS_SECRET, DrillScenario, MotoServer, free_port
from tests.report.conftest import cli
from tests.report.test_report_cli import ed25519_pair

pytestmark = pytest.mark.integration
PLANTED = "Planted-Config-Secret-9vQ2"  # a password in the configuration's endpoint URL


def report_of(drill: DrillScenario) -> Path:
    found = sorted(drill.reports.glob("drill-report-*.html"))
    assert len(found) == 1, found
    return found[0]


def break_newest_dump(drill: DrillScenario) -> None:
    newest = drill.newest()
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("scenario", "exit_code", "word"),
    [("healthy", 0, "PASSED"), ("failing", 1, "FAILED"), ("could_not_verify", 3, "COULD NOT VERIFY")],
)
def test_report_of_a_real_drill_in_chromium(
    drill: DrillScenario,
    open_report,  # type: ignore[no-untyped-def]
    scenario: str,
    exit_code: int,
    word: str,
) -> None:
    if scenario == "failing":
        break_newest_dump(drill)
    config = drill.write_config()
    if scenario == "could_not_verify":  # no PostgreSQL server binaries where the configuration points
        config.write_text(config.read_text().replace("[target]\n", '[target]\npg_bindir = "/nonexistent/bin"\n'))
    result = drill.run()
    assert result.returncode == exit_code, result.output
    html = report_of(drill)
    assert f"report: {html} ({word}, 1 drill(s)" in result.output
    opened = open_report(html)
    assert opened.text("#verdict .verdict-word") == word
    assert opened.page.locator("#verdict .verdict-word").is_visible()
    objectives = opened.text("#objectives")
    assert "of 15m" in objectives  # the measured RTO against the objective written in drills.toml
    assert "of 1d2h" in objectives
    details = opened.text("#drills")
    for check in ("restore", "rpo_newest_age", "amcheck", "manifest_row_counts"):
        assert check in details
    record = drill.record()
    if scenario == "healthy":
        passed = [c for c in record["checks"] if c["outcome"] == "passed"]
        # a first drill records its drift baseline: not applicable, never shown as a pass
        (baseline,) = [c for c in record["checks"] if c["outcome"] != "passed"]
        assert (baseline["name"], baseline["outcome"]) == ("drift", "not_applicable"), baseline
        assert len(passed) == len(record["checks"]) - 1 >= 11
        assert opened.page.locator("#drills .b-passed").count() == len(passed) + 1  # each check, and the drill
        assert "✓ matches the checksum recorded at backup time" in details
        assert "pg_amcheck found no heap or btree corruption" in details
        assert opened.page.get_by_text("SELECT count(*) FROM ONLY <each table>").first.is_visible()
    if scenario == "failing":
        assert "backup corrupt" in opened.text("#failures")
        assert record["reason"] in opened.text("#failures")
        assert "What to do:" in opened.text("#failures")
    if scenario == "could_not_verify":
        assert "/nonexistent/bin" in opened.text("#failures")
        assert "Install the missing tools" in opened.text("#failures")
        assert opened.text("#drills article > header .badge") == "COULD NOT VERIFY"
        not_run = [c for c in record["checks"] if c["detail"].startswith("not run:")]
        assert len(not_run) >= 7  # every check of the restored database
        assert opened.page.locator("#drills tr.notrun").count() == len(not_run)
    assert opened.external_requests == []
    assert opened.dialogs == []
    verified = cli("verify-report", str(drill.reports), cwd=drill.root)
    assert verified.returncode == 0, verified.output


def test_secrets_in_config_and_environment_reach_no_report_file(
    moto: MotoServer, drill: DrillScenario, tmp_path: Path
) -> None:
    """S3 through an endpoint URL carrying a password, a signing key given as PEM text in the environment,
    and the AWS secret: none of them appears in any file under reports/ or in the output."""
    s3 = moto.client()
    bucket = f"planted-{drill.root.name.lower().replace('_', '-')}"[:60]
    s3.create_bucket(Bucket=bucket)
    for path in drill.store.rglob("*"):
        if path.suffix in {".dump", ".json"} and not path.name.endswith(".meta.json"):
            meta = path.with_name(path.name + ".meta.json")
            metadata = json.loads(meta.read_text()) if meta.exists() else {}
            s3.put_object(
                Bucket=bucket, Key=str(path.relative_to(drill.store)), Body=path.read_bytes(), Metadata=metadata
            )
    endpoint = moto.endpoint.replace("http://", f"http://reader:{PLANTED}@")
    drill.write_config(
        source=f"s3://{bucket}/postgres/logical/", extra=f'endpoint_url = "{endpoint}"\nregion = "us-east-1"'
    )
    _private, public, pem = ed25519_pair(tmp_path)
    result = drill.run(env={"RESTOREDRILL_SIGNING_KEY": pem})
    assert result.returncode == 0, result.output
    assert drill.record()["verdict"] == "passed"
    key_body = pem.splitlines()[1]
    for secret in (PLANTED, AWS_SECRET, key_body):
        assert secret not in result.output
        for path in drill.reports.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(errors="replace"), (secret, path)
    verified = cli("verify-report", str(drill.reports), "--public-key", str(public), cwd=drill.root)
    assert verified.returncode == 0, verified.output
    assert "1 signature(s) valid" in verified.output

    record = next((drill.reports / "evidence").glob("*.json"))
    data = bytearray(record.read_bytes())
    data[data.index(b"passed")] ^= 0x01  # one byte of the record
    record.write_bytes(bytes(data))
    tampered = cli("verify-report", str(drill.reports), "--public-key", str(public), cwd=drill.root)
    assert tampered.returncode == 1
    assert f"evidence/{record.name} does not match its SHA-256" in tampered.output


def test_a_bad_signing_key_stops_the_run_before_any_drill(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run(env={"RESTOREDRILL_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"})
    assert result.returncode == 2, result.output
    assert "is not an unencrypted PEM private key" in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert not (drill.reports / "evidence").exists()


def test_password_in_an_unreachable_endpoint_url_reaches_no_file(drill: DrillScenario) -> None:
    endpoint = f"http://reader:{PLANTED}@127.0.0.1:{free_port()}"
    drill.write_config(
        source="s3://backups/postgres/logical/", extra=f'endpoint_url = "{endpoint}"\nregion = "us-east-1"'
    )
    result = drill.run()
    assert result.returncode == 3, result.output
    assert PLANTED not in report_of(drill).read_text()  # the report itself redacts it ...
    leaked = [p for p in drill.reports.rglob("*") if p.is_file() and PLANTED in p.read_text(errors="replace")]
    assert leaked == []  # ... but the engine's own files do not
