"""Bad input reproduced by a new user: each is one clear sentence with exit 2 (usage), never a traceback,
never a hang, never a FAILED or COULD NOT VERIFY verdict for what is really a mistake on the command line
or in drills.toml. The CLI runs as a subprocess, exactly as users run it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import Completed, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration
TEN_MB = 10 * 1024 * 1024


def one_sentence(result: Completed) -> None:
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert "Error:" not in result.output, result.output
    assert "unexpected" not in result.output, result.output
    assert result.output.strip().count("\n") == 0, result.output


def config(root: Path, *, reports: str | None = None, workdir: str | None = None, database: str = "") -> Path:
    path = root / "drills.toml"
    path.write_text(
        f'reports_dir = "{reports or root / "reports"}"\n'
        '[objectives.logical]\nrpo = "26h"\nrto = "15m"\n'
        '[objectives.pgbackrest]\nrpo = "1h"\nrto = "15m"\n'
        + (f'[target]\nworkdir = "{workdir}"\n' if workdir else "")
        + (database or f'[databases.shop.logical]\nsource = "file://{root}/backups/"\n')
    )
    return path


def run(path: Path, env: dict[str, str] | None = None) -> Completed:
    return run_cli("run", "--config", str(path), env=env, timeout=120)


def test_a_reports_dir_that_is_a_file_or_cannot_be_written(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    is_a_file = run(config(tmp_path, reports=str(afile)))
    one_sentence(is_a_file)
    assert f"the reports folder {afile} is a file, not a folder" in is_a_file.output

    under_proc = run(config(tmp_path, reports="/proc/restoredrill-reports"))
    one_sentence(under_proc)
    assert "the reports folder /proc/restoredrill-reports cannot be created or written" in under_proc.output


def test_a_workdir_under_proc_is_one_sentence(tmp_path: Path) -> None:
    proc_dir = Path("/proc/restoredrill-work")
    for result in (
        run(config(tmp_path, workdir=str(proc_dir))),
        run_cli("run", "--config", str(config(tmp_path)), workdir=proc_dir, timeout=120),  # RESTOREDRILL_WORKDIR
        run_cli("janitor", "--workdir", str(proc_dir)),
    ):
        one_sentence(result)
        assert f"the workdir {proc_dir} cannot be created or written" in result.output
        assert "FileNotFoundError" not in result.output


def test_a_workdir_too_long_for_the_postgresql_socket_is_a_usage_error(tmp_path: Path) -> None:
    root = traversable_tempdir("rd-long-")
    long = root / ("w" * (80 - len(str(root)) - 1))  # 80 bytes in all
    try:
        for result in (
            run(config(tmp_path, workdir=str(long))),
            run_cli("run", "--config", str(config(tmp_path)), workdir=long, timeout=120),  # RESTOREDRILL_WORKDIR
        ):
            one_sentence(result)
            assert f"the workdir {long} is 80 bytes long" in result.output
            assert "over the 107-byte limit of a unix socket path" in result.output
            assert "pick a workdir of at most 58 bytes" in result.output
            assert not (tmp_path / "reports" / "evidence").exists(), "refused before any drill"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_database_with_no_layer_is_a_usage_error(tmp_path: Path) -> None:
    result = run(config(tmp_path, database='[databases.shop]\nobjectives.logical.rpo = "1h"\n'))
    one_sentence(result)
    assert "'databases.shop' names no layer to drill" in result.output


def test_a_bad_pitr_target_is_a_usage_error(tmp_path: Path) -> None:
    result = run(config(tmp_path, database='[databases.shop.pgbackrest]\nstanza = "main"\npitr_target = "soon"\n'))
    one_sentence(result)
    assert "'databases.shop.pgbackrest.pitr_target' is neither an ISO time nor a duration" in result.output


def test_a_cipher_passphrase_in_pgbackrest_options_is_refused_and_never_shown(tmp_path: Path) -> None:
    database = '[databases.shop.pgbackrest]\nstanza = "main"\noptions = ["--repo1-cipher-pass=Planted-Cipher-77"]\n'
    result = run(config(tmp_path, database=database))
    one_sentence(result)
    assert "cipher_pass_env" in result.output
    assert "Planted-Cipher-77" not in result.output


def test_every_config_problem_is_named(tmp_path: Path) -> None:
    database = f'[databases.shop.logical]\nsource = "file://{tmp_path}/"\nregoin = "x"\nretention_days = 0\n'
    result = run(config(tmp_path, database=database))
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output
    assert "2 problems" in result.output
    assert "'databases.shop.logical.regoin' is not a known setting" in result.output
    assert "'databases.shop.logical.retention_days'" in result.output


def test_a_config_with_a_10_mb_string_is_refused_in_seconds(tmp_path: Path) -> None:
    path = config(tmp_path)
    path.write_text(path.read_text() + f'dump_name = "{"a." * (TEN_MB // 2)}"\n')
    started = time.monotonic()
    result = run(path)
    assert time.monotonic() - started < 30
    one_sentence(result)
    assert "larger than any drills.toml needs" in result.output


def test_janitor_with_a_file_as_workdir(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    result = run_cli("janitor", "--workdir", str(afile))
    one_sentence(result)
    assert f"the workdir {afile} is a file, not a folder" in result.output


@pytest.mark.parametrize("option", ["--dir", "--reports"])
def test_demo_into_proc_is_one_sentence(option: str) -> None:
    result = run_cli("demo", option, "/proc/restoredrill-demo", timeout=60)
    one_sentence(result)
    assert "/proc/restoredrill-demo cannot be created or written" in result.output


@pytest.mark.parametrize("days", ["-1", "0", "x"])
def test_backup_retention_below_one_day_is_refused(days: str, tmp_path: Path) -> None:
    result = run_cli(
        "backup", "logical", "--dbname", "dbname=x", "--to", f"file://{tmp_path}/", "--retention-days", days
    )
    one_sentence(result)
    assert "--retention-days" in result.output
    assert "a whole number of days, at least 1" in result.output
