"""The user's pgBackRest repository, read through pgbackrest itself: info, repo-ls, verify, restore.

Never rewrites the user's config: it is passed with --config, and our own lock/log/spool folders are given
by environment, so nothing system-wide is touched. The cipher passphrase travels only in the environment
(PGBACKREST_REPO1_CIPHER_PASS), never on a command line. Every call is read-only except `restore`, which
writes only into the new data directory (`--archive-mode=off` keeps the copy from archiving into the repo).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from restoredrill import proc
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.layers.pgbackrest_errors import KINDS, classify, printable, wrong_key
from restoredrill.layers.wal import Segment, parse_segment


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    started_at: datetime
    stopped_at: datetime
    archive_start: str | None
    archive_stop: str | None
    size_bytes: int
    repo_size_bytes: int
    database_version: str
    error: bool
    lsn_start: str | None = None
    lsn_stop: str | None = None
    repo_delta_bytes: int | None = None  # this set's own files in the repository (not those it references)

    def evidence(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "type": self.type,
            "start": _iso(self.started_at),
            "stop": _iso(self.stopped_at),
            "wal_start": self.archive_start,
            "wal_stop": self.archive_stop,
            "lsn_start": self.lsn_start,
            "lsn_stop": self.lsn_stop,
            "size_bytes": self.size_bytes,
            "repo_size_bytes": self.repo_size_bytes,
            "database_version": self.database_version,
            "error": self.error,
        }


@dataclass(frozen=True)
class ArchivedWal:
    name: str
    segment: Segment
    archived_at: datetime
    size_bytes: int = 0


@dataclass
class StanzaInfo:
    stanza: str
    backups: list[BackupSet]
    archive_id: str | None
    archive_min: str | None
    archive_max: str | None
    cipher: str
    database_version: str | None
    wal: list[ArchivedWal] = field(default_factory=list)

    @property
    def newest(self) -> BackupSet:
        return self.backups[-1]

    @property
    def oldest_full(self) -> BackupSet | None:
        return next((b for b in self.backups if b.type == "full"), None)

    @property
    def newest_wal(self) -> ArchivedWal | None:
        return max(self.wal, key=lambda w: (w.segment, w.archived_at), default=None)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _epoch(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


_STATUS = {
    1: "the stanza does not exist in the repository (missing stanza path)",
    2: "the stanza has no backup",
    3: "the stanza has no valid backup",
    4: "the stanza's repositories disagree",
}


class PgBackRest:
    def __init__(
        self,
        stanza: str,
        *,
        config: Path | None,
        options: list[str],
        cipher_pass_env: str | None,
        workdir: Path,
        run_as: proc.RunAs | None,
        segment_mb: int = 16,
        timeout: float = 600,
    ) -> None:
        self.stanza = stanza
        self.config = config
        self.options = options
        self.workdir = workdir
        self.run_as = run_as
        self.segment_mb = segment_mb
        self.timeout = timeout
        self.env: dict[str, str] = {}
        if any(o.split("=", 1)[0].endswith("cipher-pass") for o in options):
            raise ConfigError("pgbackrest options must not carry the cipher passphrase; use cipher_pass_env")
        if config is not None and not config.exists():
            raise ConfigError(f"pgBackRest config {config} does not exist")
        if cipher_pass_env:
            passphrase = os.environ.get(cipher_pass_env)
            if not passphrase:
                raise CouldNotVerify(f"the cipher passphrase variable {cipher_pass_env} is not set")
            proc.register_secret(passphrase)
            self.env["PGBACKREST_REPO1_CIPHER_PASS"] = passphrase
        for folder in ("lock", "log", "spool"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
            if run_as:
                run_as.own(workdir / folder)

    def _args(self, command: str, *extra: str, console: str = "warn", path: str | list[str] | None = None) -> list[str]:
        args = [proc.which("pgbackrest")]
        if self.config is not None:
            args.append(f"--config={self.config}")
        args += [f"--stanza={self.stanza}", f"--log-level-console={console}", *self.options, *extra, command]
        positional = [path] if isinstance(path, str) else list(path or [])
        return [*args, *positional]

    def run(
        self,
        command: str,
        *extra: str,
        console: str = "warn",
        timeout: float | None = None,
        path: str | list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> proc.Completed:
        # Our own lock/log/spool folders go by environment: pgBackRest ignores an environment option that
        # does not apply to a command, where the same flag on the command line is an error.
        env = {
            **self.env,
            "PGBACKREST_LOCK_PATH": str(self.workdir / "lock"),
            "PGBACKREST_LOG_PATH": str(self.workdir / "log"),
            "PGBACKREST_SPOOL_PATH": str(self.workdir / "spool"),
            "PGBACKREST_LOG_LEVEL_FILE": "off",
        }
        return proc.run(
            self._args(command, *extra, console=console, path=path),
            timeout=timeout or self.timeout,
            env=env,
            run_as=self.run_as,
            what=f"pgbackrest {command}",
            cancel=cancel,
        )

    def version(self) -> str:
        return proc.run([proc.which("pgbackrest"), "version"], timeout=30).stdout.strip()

    # ----- discovery ---------------------------------------------------------------------------------
    def info(self) -> StanzaInfo:
        result = self.run("info", "--output=json")
        if result.returncode != 0:
            raise _explain(result, "reading the repository (pgbackrest info)")
        try:
            data = json.loads(result.stdout, strict=False)  # system-id > 2^53 is fine in Python ints
        except ValueError:
            raise CouldNotVerify(f"pgbackrest info printed no JSON: {result.tail(2)}") from None
        stanza = next((s for s in data if s.get("name") == self.stanza), None)
        if stanza is None:
            raise BackupDefect(f"stanza '{self.stanza}' is not in the repository")
        code = int(stanza.get("status", {}).get("code", 99))
        if code != 0:
            raise self._status_error(stanza, code)
        backups = [
            BackupSet(
                label=b["label"],
                type=b["type"],
                started_at=_epoch(b["timestamp"]["start"]),
                stopped_at=_epoch(b["timestamp"]["stop"]),
                archive_start=(b.get("archive") or {}).get("start"),
                archive_stop=(b.get("archive") or {}).get("stop"),
                size_bytes=int(b["info"]["size"]),
                repo_size_bytes=int(b["info"]["repository"]["size"]),
                database_version=next(
                    (str(d["version"]) for d in stanza.get("db", []) if d["id"] == b["database"]["id"]), "?"
                ),
                error=bool(b.get("error", False)),
                lsn_start=(b.get("lsn") or {}).get("start"),
                lsn_stop=(b.get("lsn") or {}).get("stop"),
                repo_delta_bytes=(b["info"]["repository"] or {}).get("delta"),
            )
            for b in stanza.get("backup", [])
        ]
        archives = stanza.get("archive", [])
        current = archives[-1] if archives else {}
        return StanzaInfo(
            stanza=self.stanza,
            backups=sorted(backups, key=lambda b: b.stopped_at),
            archive_id=current.get("id"),
            archive_min=current.get("min"),
            archive_max=current.get("max"),
            cipher=str(stanza.get("cipher", "none")),
            database_version=str(stanza["db"][-1]["version"]) if stanza.get("db") else None,
        )

    def _status_error(self, stanza: dict[str, Any], code: int) -> Exception:
        """Why `info` reports the stanza unusable, in pgBackRest's own words (its per-repo message is precise)."""
        said = "; ".join(
            printable(str((r.get("status") or {}).get("message", ""))) for r in stanza.get("repo", []) if r
        ) or printable(str(stanza.get("status", {}).get("message", "unknown status")))
        if code in (1, 2, 3):
            missing = self._missing_info_files("backup", "backup.info")
            detail = f"{' and '.join(missing)} missing from the repository" if missing else f"pgBackRest: {said}"
            return BackupDefect(f"stanza '{self.stanza}': {_STATUS[code]} ({detail})")
        if code == 99 and wrong_key(said, str(stanza.get("cipher", "none")) != "none"):
            # pgBackRest reads a wrong key's output as text: the info file AND its copy fail at line 1.
            return CouldNotVerify(
                f"stanza '{self.stanza}': pgBackRest cannot decrypt the repository's info files with this "
                f"passphrase (a wrong cipher passphrase): {said}"
            )
        if code == 4:
            return CouldNotVerify(f"stanza '{self.stanza}': {_STATUS[4]}: {said}")
        return classify(said, f"reading stanza '{self.stanza}' (pgbackrest info)")

    def _missing_info_files(self, folder: str, name: str) -> list[str]:
        result = self.run("repo-ls", "--output=json", path=f"{folder}/{self.stanza}")
        if result.returncode != 0:
            return []
        listing = json.loads(result.stdout or "{}", strict=False)
        return [f for f in (name, f"{name}.copy") if f not in listing]

    def archived_wal(self, archive_id: str) -> list[ArchivedWal]:
        """Every WAL segment file of an archive id, with the time it was written into the repository."""
        result = self.run("repo-ls", "--recurse", "--output=json", path=f"archive/{self.stanza}/{archive_id}")
        if result.returncode != 0:
            raise _explain(result, "listing the WAL archive (pgbackrest repo-ls)")
        listing: dict[str, dict[str, Any]] = json.loads(result.stdout or "{}", strict=False)
        found = []
        for path, entry in listing.items():
            if entry.get("type") != "file":
                continue
            name = path.rsplit("/", 1)[-1]
            segment = parse_segment(name, self.segment_mb)
            if segment is not None:
                archived_at, size = _epoch(entry.get("time", 0)), int(entry.get("size", 0))
                found.append(ArchivedWal(name.split("-", 1)[0], segment, archived_at, size))
        return sorted(found, key=lambda w: w.segment)

    def verify(
        self, process_max: int = 1, listed: list[str] | None = None, cancel: threading.Event | None = None
    ) -> list[str]:
        """Problems `pgbackrest verify` reports. Its exit code is 0 even when it finds errors (2.45), so
        the text is what counts. `listed`: the sets backup.info lists, each of which verify must have seen.
        `cancel`: set when the drill ends first (interrupted, or the check left out): verify is stopped."""
        # --job-retry=0: a corrupt file is reported at once, not after pgBackRest's retries (~15 s each).
        result = self.run(
            "verify", "--verbose", "--job-retry=0", f"--process-max={process_max}", console="info", cancel=cancel
        )
        problems = parse_verify(result.stdout + "\n" + result.stderr, listed)
        if result.returncode != 0 and not problems:
            problems.append(f"pgbackrest verify exited {result.returncode}: {result.tail(2)}")
        return problems

    # ----- restore -----------------------------------------------------------------------------------
    def fetch_wal(self, names: list[str], folder: Path, data_dir: Path, workers: int = 4) -> None:
        """`archive-get` each segment into `folder` (for a server that has no pgbackrest of its own)."""
        from concurrent.futures import ThreadPoolExecutor

        def get(name: str) -> proc.Completed:
            return self.run("archive-get", f"--pg1-path={data_dir}", path=[name, str(folder / name)])

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for name, result in zip(names, pool.map(get, names), strict=True):
                if result.returncode != 0:
                    raise BackupDefect(f"WAL segment {name} could not be fetched from the repository: {result.tail(1)}")

    def restore(self, data_dir: Path, recovery: list[str], timeout: float) -> proc.Completed:
        # Console at info: its "restore backup set <label>" line is the only word on which set pgBackRest chose.
        return self.run(
            "restore", f"--pg1-path={data_dir}", "--archive-mode=off", *recovery, console="info", timeout=timeout
        )


_RESTORED_SET = re.compile(r"restore backup set (\S+?),")


def restored_set(output: str) -> tuple[str, str] | None:
    """(label, the whole line) of the set `pgbackrest restore` says it restored."""
    for line in output.splitlines():
        if match := _RESTORED_SET.search(line):
            return match.group(1), line.split("INFO:", 1)[-1].strip()
    return None


_COUNTS = re.compile(r"((missing|checksum invalid|size invalid|other): \d+(, )?)+$")
# verify names each bad file on its own line before the summary: what was found, in which file.
_FILE_FINDING = re.compile(
    r"INFO: (file missing|invalid checksum|invalid size|invalid result) '?([^':\s]+)'?(?:: (?:\[(\d+)\] )?(.*))?$"
)
_FINDING_KIND = {
    "file missing": "missing (FileMissingError)",
    "invalid checksum": "checksum invalid (ChecksumError)",
    "invalid size": "size invalid",
}


def parse_verify(text: str, listed: list[str] | None = None) -> list[str]:
    """Each bad file (its name and the error kind), then every non-zero count, invalid backup, error status
    or ERROR/WARN line of `verify` output; then each set of `listed` (backup.info's) verify never saw.

    verify walks the set folders it finds: a folder deleted while backup.info still lists the set is not an
    error to it (2.45), yet a restore of that set, or of one depending on it, fails."""
    findings, problems, subject = [], [], "repository"
    seen = set(re.findall(r"backup: ([0-9]{8}-[0-9]{6}F(?:_[0-9]{8}-[0-9]{6}[DI])?),", text))
    unseen = [
        f"backup set {label} is listed in backup.info but verify found no folder for it"
        for label in listed or []
        if label not in seen and (seen or "archiveId:" in text)
    ]
    for line in text.splitlines():
        if match := _FILE_FINDING.search(line):
            what, name, code, message = match.groups()
            if what == "invalid result":
                kind = KINDS.get(int(code), f"error [{code}]") if code else "error"
                findings.append(f"{name}: unreadable ({kind}: {(message or '').strip()})")
            else:
                findings.append(f"{name}: {_FINDING_KIND[what]}")
            continue
        body = line.split("INFO:", 1)[-1].strip()
        if body.startswith(("archiveId:", "backup:")):
            subject = body.split(",", 1)[0]
            if body.startswith("backup:") and "status: valid" not in body:
                problems.append(body)
        elif body.startswith("status:"):
            if body != "status: ok":
                problems.append(f"verify {body}")
        elif _COUNTS.match(body):
            if any(int(n) for n in re.findall(r"\d+", body)):
                problems.append(f"{subject}: {body}")
        elif re.search(r"\b(ERROR|WARN):", line):
            problems.append(line.split(":", 3)[-1].strip() if "P00" in line else line.strip())
        elif body and not body.startswith(("stanza:", "verify command")) and "DETAIL:" not in line and line[:1] == " ":
            problems.append(body)  # e.g. "No usable archive.info file", "backup info file and archive ... match"
    return findings + problems + unseen


def _explain(result: proc.Completed, doing: str) -> Exception:
    text = (result.stdout + "\n" + result.stderr).strip()
    if "[037]" in text or "does not exist" in text:
        return BackupDefect(f"{doing} failed: {text.splitlines()[-1]}")
    return classify(text, doing)
