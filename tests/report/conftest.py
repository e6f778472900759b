"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) to open the reports in,
and the restoredrill CLI run as a subprocess in a folder of the test's own.

A missing browser or Allure command line is a FAILURE when CI=true (the suite installs both through
scripts/install-report-tools.sh); on a developer machine those tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM = Path(os.environ.get("RESTOREDRILL_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def missing(what: str) -> NoReturn:
    message = f"{what} (scripts/install-report-tools.sh installs it)"
    if IN_CI:
        pytest.fail(f"{message}: required in CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def allure_cli() -> str:
    found = shutil.which("allure")
    if found is None or shutil.which("java") is None:
        missing("the Allure command line (npm allure-commandline) or Java is not installed")
    return found


@dataclass
class Opened:
    """A report open in Chromium, with every request it tried and every dialog it raised."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).first.inner_text())

    def color(self, selector: str) -> str:
        return str(self.page.eval_on_selector(selector, "e => getComputedStyle(e).color"))

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    contexts = []

    def opener(path: Path, width: int = 1280) -> Opened:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        opened = Opened(page, path.resolve().as_uri())
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
        context.route(  # any request that leaves the file is recorded above and refused here
            "**/*", lambda route: route.continue_() if route.request.url == opened.url else route.abort()
        )
        page.goto(opened.url, wait_until="load")
        page.wait_for_timeout(150)  # anything deferred (images, fonts, beacons) would have started by now
        return opened

    yield opener
    for context in contexts:
        context.close()


@dataclass
class Cli:
    returncode: int
    output: str


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Cli:
    """`restoredrill ...` exactly as users run it, from a folder of the test's own."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTOREDRILL_", "GITHUB_"))}
    result = subprocess.run(
        [sys.executable, "-m", "restoredrill.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**full_env, **(env or {})},
        check=False,
    )
    return Cli(result.returncode, result.stdout + result.stderr)
