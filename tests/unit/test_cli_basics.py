"""The command line's own manners: a version, and help that says where extra arguments go."""

from __future__ import annotations

import pytest

from restoredrill import __version__
from restoredrill.cli import main


def test_version_is_printed_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"restoredrill {__version__}"


def test_run_help_says_extra_arguments_go_to_pytest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "passed to pytest" in text
    assert "-k" in text
