"""Notifications to a Slack-compatible webhook served by the test (http.server on a free port): posted on
failure or always, with verdict, reasons and report; the URL never printed; an unreachable or failing
webhook is a warning that never changes the verdict."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from restoredrill.operate import notify
from tests.conftest import DrillScenario, free_port

pytestmark = pytest.mark.integration
TOKEN = "T0KEN-hook-Zx81q"  # noqa: S105 planted: the URL is a credential and must never be printed


@dataclass
class Webhook:
    port: int
    status: int = 200
    received: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/{TOKEN}"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


def configure(drill: DrillScenario, notify_on: str, rpo: str = "26h") -> Path:
    path = drill.write_config(objectives=f'rpo = "{rpo}"\nrto = "15m"')
    path.write_text(f'notify_env = "DRILL_WEBHOOK"\nnotify_on = "{notify_on}"\n' + path.read_text())
    return path


def no_url_anywhere(drill: DrillScenario, output: str) -> None:
    assert TOKEN not in output
    for path in drill.reports.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_a_failed_run_posts_verdict_reasons_and_report(drill: DrillScenario, webhook: Webhook) -> None:
    configure(drill, "failure", rpo="1s")  # the newest dump is older than a second: the drill fails
    result = drill.run(env={"DRILL_WEBHOOK": webhook.url})
    assert result.returncode == 1, result.output
    (posted,) = webhook.received
    assert posted["path"] == f"/services/{TOKEN}"
    assert posted["type"] == "application/json"
    text = posted["json"]["text"]
    assert "FAILED" in text
    assert "shop/logical: failed: rpo_newest_age: newest dump is" in text
    report = next(line for line in text.splitlines() if line.startswith("Report: "))
    assert Path(report.removeprefix("Report: ")).is_file()
    no_url_anywhere(drill, result.output)


def test_a_passing_run_posts_only_when_always(drill: DrillScenario, webhook: Webhook) -> None:
    configure(drill, "failure")
    quiet = drill.run(env={"DRILL_WEBHOOK": webhook.url})
    assert quiet.returncode == 0, quiet.output
    assert webhook.received == []
    configure(drill, "always")
    loud = drill.run(env={"DRILL_WEBHOOK": webhook.url})
    assert loud.returncode == 0, loud.output
    (posted,) = webhook.received
    assert "PASSED (1 of 1 drill(s) passed)" in posted["json"]["text"]
    no_url_anywhere(drill, loud.output)


def test_an_unreachable_webhook_is_a_warning_and_keeps_the_verdict(drill: DrillScenario) -> None:
    configure(drill, "failure", rpo="1s")
    url = f"http://127.0.0.1:{free_port()}/services/{TOKEN}"
    result = drill.run(env={"DRILL_WEBHOOK": url})
    assert result.returncode == 1, result.output
    assert "warning: the notification was not delivered: the webhook could not be reached" in result.output
    no_url_anywhere(drill, result.output)


def test_a_webhook_error_status_is_reported_without_the_url(webhook: Webhook) -> None:
    webhook.status = 500
    problem = notify.post(webhook.url, "hello")
    assert problem == "the webhook answered HTTP 500"
    assert webhook.received[0]["json"] == {"text": "hello"}
    assert notify.post("file:///etc/passwd", "x") == "the webhook URL is not an http(s) URL"
