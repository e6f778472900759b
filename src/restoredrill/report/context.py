"""Where and from what a run came: the suite's git commit, the CI run, the configuration file.

`restoredrill run` writes it to reports/runs/<run_id>.json when the run starts, so a report rendered
later still names the commit that ran. Without that file the context is captured when the report is made.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import platform
import shlex
import socket
import sys
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from restoredrill import __version__, proc
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import iso, utcnow
from restoredrill.report.redact import redact
from restoredrill.verdicts import PlannedDrill

PROJECT = Path(__file__).resolve().parents[3]


class RunContext(BaseModel):
    run_id: str
    captured_at: str
    captured_when: str = "run start"
    suite_version: str = __version__
    git_commit: str | None = None
    git_dirty: bool | None = None
    ci: dict[str, str] = {}
    config_path: str | None = None
    config_sha256: str | None = None
    command: str | None = None
    host: str = ""
    user: str = ""
    python: str = ""
    platform: str = ""
    planned: list[dict[str, str | None]] | None = Field(
        None, description="every drill the configuration planned: what a selection left out is judged against"
    )

    def planned_drills(self) -> list[PlannedDrill] | None:
        if self.planned is None:
            return None
        return [PlannedDrill(str(d["database"]), str(d["layer"]), d.get("variant")) for d in self.planned]


def _git(*args: str) -> str | None:
    """A read-only git query of the suite's own checkout (no optional locks: never touches the index)."""
    if not (PROJECT / ".git").exists():
        return None
    with contextlib.suppress(CouldNotVerify):
        result = proc.run(["git", "--no-optional-locks", "-C", str(PROJECT), *args], timeout=10, what="git")
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def suite_commit() -> tuple[str | None, bool | None]:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return os.environ.get("GITHUB_SHA"), None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def ci_context(env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ) if env is None else env
    if env.get("GITHUB_ACTIONS") != "true":
        return {"provider": "ci", "ci": env["CI"]} if env.get("CI") else {}
    server, repo, run = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    found = {
        "provider": "github-actions",
        "repository": repo,
        "workflow": env.get("GITHUB_WORKFLOW", ""),
        "run_id": run,
        "run_attempt": env.get("GITHUB_RUN_ATTEMPT", ""),
        "event": env.get("GITHUB_EVENT_NAME", ""),
        "ref": env.get("GITHUB_REF", ""),
        "actor": env.get("GITHUB_ACTOR", ""),
        "run_url": f"{server}/{repo}/actions/runs/{run}" if server and repo and run else "",
    }
    return {k: v for k, v in found.items() if v}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def capture(run_id: str, config_path: Path | None, when: str = "run start") -> RunContext:
    commit, dirty = suite_commit()
    config_sha = None
    if config_path is not None:
        with contextlib.suppress(OSError):
            config_sha = hashlib.sha256(config_path.read_bytes()).hexdigest()
    return RunContext(
        run_id=run_id,
        captured_at=iso(utcnow()) or "",
        captured_when=when,
        git_commit=commit,
        git_dirty=dirty,
        ci=ci_context(),
        config_path=str(config_path) if config_path else None,
        config_sha256=config_sha,
        command=redact(shlex.join(["restoredrill", *sys.argv[1:]])) if sys.argv else None,
        host=socket.gethostname(),
        user=_user(),
        python=platform.python_version(),
        platform=platform.platform(terse=True),
    )


def context_path(reports_dir: Path, run_id: str) -> Path:
    return reports_dir / "runs" / f"{run_id}.json"


def write_run_context(
    reports_dir: Path, run_id: str, config_path: Path | None, planned: list[PlannedDrill] | None = None
) -> Path:
    path = context_path(reports_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    context = capture(run_id, config_path)
    if planned is not None:
        context.planned = [drill.as_dict() for drill in planned]
    path.write_text(redact(context.model_dump_json(indent=2)) + "\n", encoding="utf-8")
    return path


def read_run_context(reports_dir: Path, run_id: str, config_path: Path | None) -> tuple[RunContext, Path | None]:
    """The context written at run start, or one captured now (then no file backs it)."""
    path = context_path(reports_dir, run_id)
    with contextlib.suppress(OSError, ValidationError):
        return RunContext.model_validate_json(path.read_bytes()), path
    return capture(run_id, config_path, when="report time (no context was recorded at run start)"), None
