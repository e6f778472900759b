"""The pgBackRest detection corpus: a healthy pgBackRest repository, broken one way per class, drilled as a user
would (`restoredrill run`), and the verdict compared with the one each class must get.

Every class is data: its name, the layer, how it is applied, the recovery targets it runs, the expected
verdict and exit code, and the words that must name the defect. Healthy posix, encrypted and S3 repositories
are drilled too, three times each: a false alarm counts as much as a miss.

    python -m tests.detection_pgbackrest [--only CLASS ...] [--no-healthy] [--json FILE]

`run()` returns one row per class (and per healthy run): class, caught, check, seconds, reason, expected and
actual exit code. Exit 0 when every row is as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import MotoServer, run_cli, start_moto, traversable_tempdir
from tests.pgbackrest_support import Repo, build_repo, drill_config, tls_front

LAYER = "pgbackrest"
PASSPHRASE = "corpus-Cipher-9fT3"  # noqa: S105 - a test repository's key, planted to prove it never leaks
EXIT = {"passed": 0, "failed": 1, "could_not_verify": 3}


@dataclass
class Setup:
    """What a class changes in the drill's configuration besides the repository."""

    targets: tuple[str, ...] = ("latest",)
    objectives: str = ""
    pitr_target: str | None = None
    extra: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Templates:
    """Healthy repositories, built once; each class gets a private clone of one."""

    posix: Repo
    other_cluster: Repo | None = None
    encrypted: Repo | None = None


Apply = Callable[[Repo, Templates], Setup]


@dataclass(frozen=True)
class DefectClass:
    name: str
    how: str
    apply: Apply
    expected_verdict: str
    words: str  # must appear in the reason or a failed check: the message names the defect
    repository: str = "posix"  # posix | encrypted
    fast: bool = False  # in the CI subset
    layer: str = LAYER

    @property
    def expected_exit(self) -> int:
        return EXIT[self.expected_verdict]


@dataclass
class Row:
    cls: str
    layer: str
    caught: bool
    check: str | None
    seconds: float
    reason: str
    expected_verdict: str
    actual_verdict: str
    expected_exit: int
    actual_exit: int


# ----- how each class is applied -----------------------------------------------------------------------
def _wal(repo: Repo, index: int) -> Path:
    return repo.segments()[index]


def _same_owner(like: Path, path: Path) -> None:
    stat = like.stat()
    os.chown(path, stat.st_uid, stat.st_gid)


def _foreign_pair(repo: Repo, templates: Templates) -> tuple[Path, Path]:
    """(our segment, the other cluster's segment of the same name): the newest name both archives hold, short
    of our newest, so replay to the end must read it. The two archives need not be the same length."""
    assert templates.other_cluster is not None
    theirs = {p.name[:24]: p for p in templates.other_cluster.segments()}
    ours = [p for p in repo.segments()[:-1] if p.name[:24] in theirs]
    if not ours:
        raise RuntimeError("the two clusters' archives share no segment name")
    return ours[-1], theirs[ours[-1].name[:24]]


def _newest_set(repo: Repo, suffix: str = "I") -> Path:
    return sorted(repo.backup_dir().glob(f"*{suffix}"))[-1]


def _largest_file(folder: Path) -> Path:
    return max((p for p in (folder / "pg_data" / "base").rglob("*.lz4")), key=lambda p: p.stat().st_size)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def delete_wal(index: int) -> Apply:
    def apply(repo: Repo, _t: Templates) -> Setup:
        _wal(repo, index).unlink()
        return Setup(targets=("time",) if index == -4 else ("latest",))

    return apply


def delete_middle_wal(repo: Repo, _t: Templates) -> Setup:
    segments = repo.segments()
    segments[len(segments) // 2].unlink()
    return Setup()


def truncate_wal(repo: Repo, _t: Templates) -> Setup:
    victim = _wal(repo, -3)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return Setup()


def foreign_wal_original_name(repo: Repo, templates: Templates) -> Setup:
    victim, other = _foreign_pair(repo, templates)
    victim.write_bytes(other.read_bytes())
    return Setup()


def foreign_wal_own_name(repo: Repo, templates: Templates) -> Setup:
    victim, other = _foreign_pair(repo, templates)
    shutil.copy2(other, victim.parent / other.name)
    _same_owner(victim, victim.parent / other.name)
    victim.unlink()
    return Setup()


def _rewrite_wal(victim: Path, change: Callable[[bytearray], None]) -> None:
    """Change a segment's bytes, recompress it and rename it with its new SHA-1, as pgBackRest names it:
    the repository's own checksums agree, only PostgreSQL can tell."""
    raw = bytearray(subprocess.run(["lz4", "-dc", str(victim)], capture_output=True, check=True).stdout)
    change(raw)
    packed = subprocess.run(["lz4", "-c", "-"], input=bytes(raw), capture_output=True, check=True).stdout
    renamed = victim.parent / f"{victim.name[:24]}-{hashlib.sha1(bytes(raw)).hexdigest()}.lz4"  # noqa: S324
    renamed.write_bytes(packed)
    _same_owner(victim, renamed)
    victim.unlink()


def wal_record_checksum(repo: Repo, _t: Templates) -> Setup:
    def flip(raw: bytearray) -> None:
        # Inside the first record's data (the long page header is 40 bytes, a record header 24): an
        # archive_timeout switch leaves most of a segment as zero padding, where a changed byte means nothing.
        raw[40 + 24 + 4] ^= 0xFF

    _rewrite_wal(_wal(repo, -3), flip)
    return Setup()


def wal_other_system_id(repo: Repo, _t: Templates) -> Setup:
    def other_system(raw: bytearray) -> None:
        raw[24:32] = (int.from_bytes(raw[24:32], "little") ^ 0x5A5A).to_bytes(8, "little")  # xlp_sysid

    _rewrite_wal(_wal(repo, -3), other_system)
    return Setup()


def flip_own_file(repo: Repo, _t: Templates) -> Setup:
    _flip(_largest_file(_newest_set(repo)))
    return Setup(targets=("immediate",))


def flip_prior_file(repo: Repo, _t: Templates) -> Setup:
    _flip(_largest_file(_newest_set(repo, "F")))  # the incr set references the full set's unchanged files
    return Setup(targets=("immediate",))


def delete_set_file(repo: Repo, _t: Templates) -> Setup:
    _largest_file(_newest_set(repo)).unlink()
    return Setup(targets=("immediate",))


def delete_set_folder(repo: Repo, _t: Templates) -> Setup:
    shutil.rmtree(_newest_set(repo, "F"))  # backup.info still lists it, and the newer sets reference it
    return Setup(targets=("immediate",))


def delete_diff_folder(repo: Repo, _t: Templates) -> Setup:
    shutil.rmtree(_newest_set(repo, "D"))  # backup.info still lists it; verify (2.45) does not notice
    return Setup()


def corrupt_manifests(repo: Repo, _t: Templates) -> Setup:
    for name in ("backup.manifest", "backup.manifest.copy"):
        path = _newest_set(repo) / name
        data = bytearray(path.read_bytes())
        third = len(data) // 3
        data[third : third + 20] = b"x" * 20
        path.write_bytes(bytes(data))
    return Setup(targets=("immediate",))


def delete_backup_info(repo: Repo, _t: Templates) -> Setup:
    for name in ("backup.info", "backup.info.copy"):
        (repo.backup_dir() / name).unlink()
    return Setup(targets=("immediate",))


def delete_archive_info(repo: Repo, _t: Templates) -> Setup:
    for name in ("archive.info", "archive.info.copy"):
        (repo.archive.parent / name).unlink()
    return Setup(targets=("immediate",))


def stale_archive(_repo: Repo, _t: Templates) -> Setup:
    return Setup(objectives='rpo = "1s"\nrto = "15m"')


def target_before_oldest(_repo: Repo, _t: Templates) -> Setup:
    return Setup(targets=("time",), pitr_target=(datetime.now(UTC) - timedelta(hours=2)).isoformat())


def target_after_last_commit(repo: Repo, _t: Templates) -> Setup:
    """A source that wrote nothing after the target: the newest segment was archived later (an idle
    archive_timeout switch), but no commit follows the target."""
    newest = repo.segments()[-1]
    later = newest.stat().st_mtime + 30
    os.utime(newest, (later, later))
    last = max(repo.ledger_commits.values())
    return Setup(targets=("time",), pitr_target=(last + timedelta(seconds=2)).isoformat())


def wrong_passphrase(_repo: Repo, _t: Templates) -> Setup:
    return Setup(extra='cipher_pass_env = "CORPUS_CIPHER"', env={"CORPUS_CIPHER": "not-the-" + PASSPHRASE})


def other_cluster_archive(repo: Repo, templates: Templates) -> Setup:
    assert templates.other_cluster is not None
    ours = repo.archive.parent
    shutil.rmtree(ours)
    subprocess.run(["cp", "-a", str(templates.other_cluster.archive.parent), str(ours)], check=True)
    return Setup(targets=("immediate",))


CLASSES: tuple[DefectClass, ...] = (
    DefectClass("wal_missing_middle", "the middle archived segment deleted (between sets)", delete_middle_wal,
                "failed", "is missing: point-in-time recovery is broken"),
    DefectClass("wal_missing_pitr_window", "a segment inside the PITR window deleted", delete_wal(-4), "failed",
                "recovery ended before configured recovery target was reached; replay ended at"),
    DefectClass("wal_missing_newest_but_one", "the newest-but-one segment deleted", delete_wal(-2), "failed",
                "Replay stopped at segment", fast=True),
    DefectClass("wal_truncated", "a segment cut to half its size", truncate_wal, "failed", "FormatError"),
    DefectClass("wal_foreign_original_name", "another cluster's segment under the original file name",
                foreign_wal_original_name, "failed", "WAL file is from different database system"),
    DefectClass("wal_foreign_own_name", "another cluster's segment under its own file name (checksum agrees)",
                foreign_wal_own_name, "failed", "WAL file is from different database system"),
    DefectClass("wal_other_system_id", "a segment whose header names another system, renamed to its SHA-1",
                wal_other_system_id, "failed", "WAL file is from different database system", fast=True),
    DefectClass("wal_record_checksum", "a WAL record byte changed, file renamed to its new SHA-1",
                wal_record_checksum, "failed", "checksum", fast=True),
    DefectClass("set_file_flipped_own", "a byte flipped in a data file of the newest set's own folder",
                flip_own_file, "failed", "corrupt"),
    DefectClass("set_file_flipped_prior", "a byte flipped in a full-set file the newest set references",
                flip_prior_file, "failed", "corrupt"),
    DefectClass("set_file_deleted", "a data file deleted from the newest set", delete_set_file, "failed",
                "FileMissingError", fast=True),
    DefectClass("set_folder_deleted", "the full set's folder deleted while backup.info lists it",
                delete_set_folder, "failed", "FileMissingError"),
    DefectClass("set_folder_deleted_diff", "the diff set's folder deleted while backup.info lists it",
                delete_diff_folder, "failed", "verify found no folder"),
    DefectClass("manifest_corrupt", "backup.manifest and its copy overwritten in the middle", corrupt_manifests,
                "failed", "FormatError", fast=True),
    DefectClass("backup_info_missing", "backup.info and backup.info.copy deleted", delete_backup_info, "failed",
                "backup.info"),
    DefectClass("archive_info_missing", "archive.info and archive.info.copy deleted", delete_archive_info,
                "failed", "archive.info", fast=True),
    DefectClass("stale_archive", "newest archived WAL older than the RPO (1 s)", stale_archive, "failed",
                "WAL archiving has stalled"),
    DefectClass("pitr_before_oldest_set", "a PITR target two hours before the oldest set", target_before_oldest,
                "failed", "is before the oldest backup set"),
    DefectClass("pitr_after_last_commit", "a PITR target after the last commit in the archive",
                target_after_last_commit, "could_not_verify", "no transaction was committed after the PITR target"),
    DefectClass("wrong_passphrase", "an encrypted repository opened with the wrong passphrase", wrong_passphrase,
                "could_not_verify", "wrong cipher passphrase", repository="encrypted"),
    DefectClass("other_cluster_archive", "another cluster's archive under the stanza", other_cluster_archive,
                "failed", "ArchiveMismatchError"),
)  # fmt: skip


# ----- running --------------------------------------------------------------------------------------------
def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "reports" / "evidence").glob("*.json"))]


def _worst(records: list[dict]) -> str:
    verdicts = {r["verdict"] for r in records}
    for verdict in ("failed", "could_not_verify", "passed"):
        if verdict in verdicts:
            return verdict
    return "could_not_verify"


def _named_by(records: list[dict], words: str) -> tuple[str | None, str]:
    """(the check whose words name the defect, the headline reason) across the drill's records."""
    for record in records:
        if record["verdict"] == "passed":
            continue
        for check in record["checks"]:
            if check["outcome"] != "passed" and words.lower() in check["detail"].lower():
                return f"{record['variant']}/{check['name']}", record["reason"] or ""
        if words.lower() in (record["reason"] or "").lower():
            return f"{record['variant']}/restore", record["reason"] or ""
    reasons = [r["reason"] for r in records if r.get("reason")]
    return None, reasons[0] if reasons else ""


def drill_once(
    template: Repo, setup_of: Apply, templates: Templates, *, encrypted: bool = False, in_place: bool = False
) -> tuple:
    """Clone, break (or not), run `restoredrill run`; (exit code, records, seconds).

    `in_place`: drill the template itself (an S3 repository: its repo1-path is the key prefix in the bucket,
    so a local copy of the folder would point at nothing). Only for healthy runs: a drill never writes."""
    root = traversable_tempdir("rd-corpus-")
    try:
        repo = template if in_place else template.clone(root)
        if encrypted:  # the drill gets the passphrase from the environment only
            text = repo.config.read_text()
            repo.config.write_text("".join(ln for ln in text.splitlines(True) if "cipher-pass" not in ln))
        setup = setup_of(repo, templates)
        extra = setup.extra or ('cipher_pass_env = "CORPUS_CIPHER"' if encrypted else "")
        env = setup.env or ({"CORPUS_CIPHER": PASSPHRASE} if encrypted else {})
        config = drill_config(
            root,
            repo,
            extra=extra,
            objectives=setup.objectives,
            targets="recovery_targets = [" + ", ".join(f'"{t}"' for t in setup.targets) + "]",
        )
        if setup.pitr_target is not None:
            config.write_text(config.read_text().replace('pitr_target = "2s"', f'pitr_target = "{setup.pitr_target}"'))
        started = time.monotonic()
        result = run_cli("run", "--config", str(config), workdir=root / "work", timeout=600, env=env)
        seconds = round(time.monotonic() - started, 1)
        records = _records(root)
        if PASSPHRASE in result.output or any(PASSPHRASE in json.dumps(r) for r in records):
            raise AssertionError("the cipher passphrase leaked into the output or the evidence")
        return result.returncode, records, seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_class(defect: DefectClass, templates: Templates) -> Row:
    template = templates.encrypted if defect.repository == "encrypted" else templates.posix
    assert template is not None
    code, records, seconds = drill_once(template, defect.apply, templates, encrypted=defect.repository == "encrypted")
    verdict = _worst(records)
    check, reason = _named_by(records, defect.words)
    caught = code == defect.expected_exit and verdict == defect.expected_verdict and check is not None
    return Row(defect.name, defect.layer, caught, check, seconds, reason, defect.expected_verdict, verdict,
               defect.expected_exit, code)  # fmt: skip


def run_healthy(
    label: str, template: Repo, templates: Templates, *, encrypted: bool = False, in_place: bool = False
) -> Row:
    def untouched(_repo: Repo, _t: Templates) -> Setup:
        return Setup(targets=("latest", "immediate", "time"))

    code, records, seconds = drill_once(template, untouched, templates, encrypted=encrypted, in_place=in_place)
    verdict = _worst(records)
    failing = next((r for r in records if r["verdict"] != "passed"), None)
    ok = code == 0 and verdict == "passed" and len(records) == 3
    return Row(label, LAYER, ok, None if failing is None else failing["variant"], seconds,
               "" if failing is None else failing["reason"] or "", "passed", verdict, 0, code)  # fmt: skip


def s3_config(bucket: str, port: int, ca: Path) -> str:
    return (
        f"repo1-type=s3\nrepo1-s3-bucket={bucket}\nrepo1-s3-endpoint=localhost\nrepo1-storage-port={port}\n"
        "repo1-s3-region=us-east-1\nrepo1-s3-uri-style=path\n"
        f"repo1-storage-ca-file={ca}\nrepo1-s3-key=testing-key\nrepo1-s3-key-secret=corpus-s3-Secret\n"
    )


@contextlib.contextmanager
def s3_repository() -> Iterator[Repo]:
    """A healthy repository in a moto bucket behind TLS (stunnel), removed afterwards."""
    moto: MotoServer = start_moto()
    try:
        with tls_front(int(moto.endpoint.rsplit(":", 1)[1])) as (port, ca):
            bucket = f"corpus-{uuid.uuid4().hex[:8]}"
            moto.client().create_bucket(Bucket=bucket)
            repo = build_repo("corpus-s3", config_extra=s3_config(bucket, port, ca))
            try:
                yield repo
            finally:
                shutil.rmtree(repo.folder.parent, ignore_errors=True)
    finally:
        moto.process.terminate()
        moto.process.wait(10)


def run(
    only: list[str] | None = None,
    *,
    healthy: int = 3,
    log: Callable[[str], None] = lambda _m: None,
) -> list[Row]:
    """Every selected class once and `healthy` runs of each healthy repository kind; one row each."""
    chosen = [c for c in CLASSES if not only or c.name in only]
    needs_other = any(c.apply in (foreign_wal_original_name, foreign_wal_own_name, other_cluster_archive)
                      for c in chosen)  # fmt: skip
    needs_encrypted = healthy > 0 or any(c.repository == "encrypted" for c in chosen)
    templates = Templates(posix=build_repo("corpus"))
    made = [templates.posix]
    try:
        if needs_other:
            templates.other_cluster = build_repo("corpus-other")
            made.append(templates.other_cluster)
        if needs_encrypted:
            cipher = f"repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={PASSPHRASE}\n"
            templates.encrypted = build_repo("corpus-enc", config_extra=cipher)
            made.append(templates.encrypted)
        rows = []
        for defect in chosen:
            try:
                rows.append(run_class(defect, templates))
            except Exception as exc:  # a class that could not be applied is a row that failed, not a crash
                rows.append(Row(defect.name, defect.layer, False, None, 0.0, f"could not be applied: {exc!r}",
                                defect.expected_verdict, "not run", defect.expected_exit, -1))  # fmt: skip
            log(_line(rows[-1]))
        for index in range(healthy):
            rows.append(run_healthy(f"healthy_posix_{index + 1}", templates.posix, templates))
            log(_line(rows[-1]))
            assert templates.encrypted is not None
            rows.append(run_healthy(f"healthy_encrypted_{index + 1}", templates.encrypted, templates, encrypted=True))
            log(_line(rows[-1]))
        if healthy:
            with s3_repository() as s3:
                for index in range(healthy):
                    rows.append(run_healthy(f"healthy_s3_{index + 1}", s3, templates, in_place=True))
                    log(_line(rows[-1]))
        return rows
    finally:
        for repo in made:
            shutil.rmtree(repo.folder.parent, ignore_errors=True)


def _line(row: Row) -> str:
    mark = "ok  " if row.caught else "MISS"
    return (
        f"{mark} {row.cls:28} {row.layer:10} exit {row.actual_exit} (expected {row.expected_exit}) "
        f"{row.seconds:6.1f}s  {row.check or '-':32} {row.reason[:110]}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="class names (default: all)")
    parser.add_argument("--no-healthy", action="store_true", help="skip the healthy repositories")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = run(args.only, healthy=0 if args.no_healthy else 3, log=lambda line: print(line, flush=True))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    missed = [r.cls for r in rows if not r.caught]
    tail = f"; not as expected: {', '.join(missed)}" if missed else ""
    print(f"{len(rows) - len(missed)}/{len(rows)} as expected{tail}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
