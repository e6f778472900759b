"""`restoredrill report` and `restoredrill verify-report` as users run them: tamper evidence that really
catches one changed byte, Ed25519 signatures, and one sentence (never a traceback) for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.report.conftest import cli
from tests.report.factory import NOW, corrupt, healthy, run_id_at, write

RUN = run_id_at(NOW, "cur001")
KEY = "RESTOREDRILL_SIGNING_KEY"


def one_sentence(output: str) -> None:
    assert "Traceback" not in output, output
    assert output.strip().count("\n") == 0, output


def ed25519_pair(folder: Path) -> tuple[Path, Path, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private = folder / "signing-key.pem"
    private.write_bytes(pem)
    public = folder / "signing-key.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public, pem.decode()


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    write(folder, [healthy("shop", RUN, NOW), corrupt("billing", RUN, NOW)])
    return folder


def test_report_then_verify_then_one_flipped_byte_fails(reports: Path) -> None:
    made = cli("report", "--reports", str(reports), cwd=reports.parent)
    assert made.returncode == 0, made.output
    assert "drill-report-2026-11-01.html (FAILED, 2 drill(s)" in made.output
    manifest = json.loads((reports / "drill-report-2026-11-01.manifest.json").read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    assert "drill-report-2026-11-01.html" in listed
    assert {f"evidence/{p.name}" for p in (reports / "evidence").iterdir()} <= listed

    ok = cli("verify-report", str(reports), cwd=reports.parent)
    assert ok.returncode == 0, ok.output
    assert "verified: 3 file(s) in 1 manifest(s) match their SHA-256, unsigned" in ok.output

    record = next((reports / "evidence").glob("*billing*"))
    data = bytearray(record.read_bytes())
    index = data.index(b'"failed"') + 2
    data[index] ^= 0x20  # "failed" -> "Failed": one byte
    record.write_bytes(bytes(data))
    bad = cli("verify-report", str(reports), cwd=reports.parent)
    assert bad.returncode == 1, bad.output
    assert f"TAMPERED: evidence/{record.name} does not match its SHA-256" in bad.output
    assert "does NOT verify" in bad.output
    assert "Traceback" not in bad.output


def test_a_changed_report_or_a_missing_record_fails(reports: Path) -> None:
    assert cli("report", "--reports", str(reports), cwd=reports.parent).returncode == 0
    html = reports / "drill-report-2026-11-01.html"
    html.write_text(html.read_text().replace("FAILED", "PASSED", 1))
    next((reports / "evidence").glob("*shop*")).unlink()
    bad = cli("verify-report", str(reports), cwd=reports.parent)
    assert bad.returncode == 1
    assert "drill-report-2026-11-01.html does not match its SHA-256" in bad.output
    assert "is missing (listed in drill-report-2026-11-01.manifest.json)" in bad.output


def test_signed_manifest_verifies_only_with_the_right_key(reports: Path, tmp_path: Path) -> None:
    private, public, pem = ed25519_pair(tmp_path)
    made = cli("report", "--reports", str(reports), "--signing-key", str(private), cwd=tmp_path)
    assert made.returncode == 0, made.output
    assert "(signed: drill-report-2026-11-01.manifest.sig)" in made.output
    good = cli("verify-report", str(reports), "--public-key", str(public), cwd=tmp_path)
    assert good.returncode == 0, good.output
    assert "1 signature(s) valid" in good.output
    (tmp_path / "other").mkdir()
    _other, other_public, _ = ed25519_pair(tmp_path / "other")
    wrong = cli("verify-report", str(reports), "--public-key", str(other_public), cwd=tmp_path)
    assert wrong.returncode == 1
    assert "does not verify with the given public key" in wrong.output

    manifest = reports / "drill-report-2026-11-01.manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"generator"', '"generator" ', 1))  # hashes untouched, bytes changed
    forged = cli("verify-report", str(reports), cwd=tmp_path)
    assert forged.returncode == 1
    assert "the manifest was altered" in forged.output
    body = pem.splitlines()[1]
    for path in reports.rglob("*"):
        if path.is_file():
            assert body not in path.read_text(errors="replace"), path


def test_signing_key_from_the_environment_as_pem_text(reports: Path, tmp_path: Path) -> None:
    _private, public, pem = ed25519_pair(tmp_path)
    made = cli("report", "--reports", str(reports), cwd=tmp_path, env={"RESTOREDRILL_SIGNING_KEY": pem})
    assert made.returncode == 0, made.output
    assert cli("verify-report", str(reports), "--public-key", str(public), cwd=tmp_path).returncode == 0
    unsigned = cli("report", "--reports", str(reports), cwd=tmp_path)
    assert "(not signed)" in unsigned.output
    stale = cli("verify-report", str(reports), "--public-key", str(public), cwd=tmp_path)
    assert stale.returncode == 1  # a key was expected, the new manifest carries no signature
    assert "is not signed" in stale.output


def test_bad_keys_are_one_sentence_and_exit_2(reports: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cases = {
        str(garbage): "is not an unencrypted PEM private key",
        str(rsa_key): "is not an Ed25519 key",
        str(tmp_path / "absent.pem"): "cannot be read",
    }
    for key, sentence in cases.items():
        result = cli("report", "--reports", str(reports), "--signing-key", key, cwd=tmp_path)
        assert result.returncode == 2, result.output
        assert sentence in result.output
        one_sentence(result.output)
    env_bad = cli("report", "--reports", str(reports), cwd=tmp_path, env={"RESTOREDRILL_SIGNING_KEY": "nope\n"})
    assert env_bad.returncode == 2
    assert "RESTOREDRILL_SIGNING_KEY" in env_bad.output
    assert not list(reports.glob("drill-report-*"))  # refused before anything was written
    wrong_public = cli("verify-report", str(reports), "--public-key", str(garbage), cwd=tmp_path)
    assert wrong_public.returncode == 2
    one_sentence(wrong_public.output)


def test_bad_input_is_one_sentence(tmp_path: Path) -> None:
    missing = cli("report", "--reports", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "does not exist" in missing.output
    one_sentence(missing.output)

    default = cli("report", cwd=tmp_path)  # no configuration here: ./reports, which does not exist
    assert default.returncode == 2
    assert f"the reports folder {tmp_path / 'reports'} does not exist" in default.output
    one_sentence(default.output)

    empty = tmp_path / "empty"
    (empty / "evidence").mkdir(parents=True)
    no_records = cli("report", "--reports", str(empty), cwd=tmp_path)
    assert no_records.returncode == 2
    assert "there are no evidence records" in no_records.output
    one_sentence(no_records.output)

    nothing_to_verify = cli("verify-report", str(empty), cwd=tmp_path)
    assert nothing_to_verify.returncode == 2
    assert "holds no report manifest" in nothing_to_verify.output
    one_sentence(nothing_to_verify.output)

    no_folder = cli("verify-report", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert no_folder.returncode == 2
    one_sentence(no_folder.output)

    unknown_run = cli("report", "--reports", str(empty), "--run", "x", cwd=tmp_path)
    assert unknown_run.returncode == 2


def test_damaged_record_is_named(reports: Path) -> None:
    record = next((reports / "evidence").glob("*shop*"))
    record.write_text(record.read_text()[:200])
    result = cli("report", "--reports", str(reports), cwd=reports.parent)
    assert result.returncode == 2
    assert f"{record} is not a readable evidence record" in result.output
    one_sentence(result.output)


def test_report_uses_the_configuration_and_shows_drills_that_did_not_run(reports: Path, tmp_path: Path) -> None:
    config = tmp_path / "drills.toml"
    config.write_text(
        'reports_dir = "reports"\n[objectives.logical]\nrpo = "26h"\nrto = "1h"\n'
        '[databases.shop.logical]\nsource = "file:///nowhere/"\n'
        '[databases.billing.logical]\nsource = "file:///nowhere/"\n'
        '[databases.ledger.logical]\nsource = "file:///nowhere/"\n'
    )
    result = cli("report", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.output
    html = (reports / "drill-report-2026-11-01.html").read_text()
    assert "Not covered by this run:</b> ledger / logical" in html


def test_job_summary_is_appended(reports: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    write(reports, [healthy("<b>x|y</b>", RUN, NOW)])
    result = cli("report", "--reports", str(reports), cwd=tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.output
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "## ❌ Restore drills: FAILED" in text
    assert "| database | layer | verdict | RTO / objective | RPO / objective | reason |" in text
    assert "| shop | logical | ✅ PASSED | 1m35s / 1h | 1h / 1d2h |  |" in text
    assert "| billing | logical | ❌ FAILED | n/a / 1h | 1h / 1d2h | backup corrupt: checksum mismatch" in text
    assert "&lt;b&gt;x\\|y&lt;/b&gt;" in text
    assert "<b>" not in text


def test_a_signing_key_variable_holding_the_pem_is_never_echoed(reports: Path, tmp_path: Path) -> None:
    """The PEM pasted into RESTOREDRILL_SIGNING_KEY in quotes, split onto one line, or only its body:
    either it is used, or one sentence says what the variable must hold; the key never reaches the output."""
    _private, public, pem = ed25519_pair(tmp_path)
    body = pem.splitlines()[1]
    quoted = cli("report", "--reports", str(reports), cwd=tmp_path, env={KEY: f'"{pem}"'})
    assert quoted.returncode == 0, quoted.output
    assert cli("verify-report", str(reports), "--public-key", str(public), cwd=tmp_path).returncode == 0
    escaped = pem.strip().replace("\n", "\\n")  # a CI secret stored as one line with literal \n
    for value in (escaped, pem.replace("\n", " ")):
        assert cli("report", "--reports", str(reports), cwd=tmp_path, env={KEY: value}).returncode == 0
    for value in (body, f"'{body}'", pem.replace("-----BEGIN", "----BEGIN"), pem.replace(body, body[:-4])):
        result = cli("report", "--reports", str(reports), cwd=tmp_path, env={KEY: value})
        assert result.returncode == 2, result.output
        one_sentence(result.output)
        assert body[:-4] not in result.output
        assert "must name a PEM key file or hold the PEM text" in result.output
