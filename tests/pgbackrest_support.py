"""Shared pieces for the pgBackRest tests: a real repository built once per worker, cloned per test."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from restoredrill.demo_pgbackrest import make_pgbackrest_repo
from restoredrill.targets.local import LocalInstance
from tests.conftest import free_port, traversable_tempdir


@dataclass
class Repo:
    folder: Path
    config: Path
    stanza: str
    ledger_commits: dict[int, datetime] = field(default_factory=dict)

    @property
    def archive(self) -> Path:
        return next((self.folder / "repo" / "archive" / self.stanza).glob("15-*"))

    def segments(self) -> list[Path]:
        return sorted(
            p
            for p in self.archive.rglob("*")
            if p.is_file() and len(p.name.split("-")[0]) == 24 and "." not in p.name.split("-")[0]
        )

    def backup_dir(self) -> Path:
        return self.folder / "repo" / "backup" / self.stanza

    def clone(self, into: Path) -> Repo:
        """A private copy (ownership kept) with its config pointing at the copy."""
        target = into / "pgbackrest"
        subprocess.run(["cp", "-a", str(self.folder), str(target)], check=True)
        config = target / "pgbackrest.conf"
        config.write_text(config.read_text().replace(str(self.folder), str(target)))
        return Repo(target, config, self.stanza, self.ledger_commits)


def build_repo(label: str, *, config_extra: str = "", env: dict[str, str] | None = None) -> Repo:
    """full, diff and incr sets; then 8 s of heartbeat and ledger writes so a WAL gap can sit inside the window."""
    folder = traversable_tempdir(f"rd-{label}-") / "pgbackrest"

    def keep(_source: LocalInstance, _demo: object) -> None:
        return None

    demo = make_pgbackrest_repo(
        folder, log=lambda _m: None, config_extra=config_extra, env=env, pace=1.0, tail=8.0, keep=keep
    )
    return Repo(demo.folder, demo.config, demo.stanza, demo.ledger_commits)


def drill_config(root: Path, repo: Repo, *, extra: str = "", objectives: str = "", targets: str = "") -> Path:
    objectives = objectives or 'rpo = "15m"\nrto = "15m"'
    config = root / "drills.toml"
    config.write_text(
        f'reports_dir = "{root / "reports"}"\n'
        f"[objectives.pgbackrest]\n{objectives}\n"
        f'[target]\nworkdir = "{root / "work"}"\n'
        f'[databases.postgres.pgbackrest]\nstanza = "{repo.stanza}"\nconfig = "{repo.config}"\n'
        f'pitr_target = "2s"\n{targets}\n{extra}\n'
        '[databases.postgres.pgbackrest.marker]\ninterval = "1s"\ntolerance = "1s"\n'
    )
    (root / "work").mkdir(exist_ok=True)
    (root / "work").chmod(0o711)
    return config


@contextlib.contextmanager
def tls_front(backend_port: int) -> Iterator[tuple[int, Path]]:
    """stunnel in front of a local HTTP S3 endpoint: (the TLS port, a CA file the postgres user can read).

    pgBackRest needs TLS with a certificate for DNS:localhost (2.45 ignores IP SANs), and moto's own TLS
    closes connections without a TLS shutdown."""
    private = Path(tempfile.mkdtemp(prefix="rd-stunnel-"))
    shared = traversable_tempdir("rd-tls-")
    cert, key = private / "cert.pem", private / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    conf = private / "stunnel.conf"
    conf.write_text(
        f"foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
        f"cert = {cert}\nkey = {key}\n"
    )
    stunnel = subprocess.Popen(
        [shutil.which("stunnel4") or "stunnel4", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    shutil.copy(cert, shared / "ca.pem")
    (shared / "ca.pem").chmod(0o644)
    try:
        yield port, shared / "ca.pem"
    finally:
        stunnel.terminate()
        stunnel.wait(10)
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
