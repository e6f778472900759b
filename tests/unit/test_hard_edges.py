"""Hard edges of user input: huge values never hang, every config problem is named, and mistakes that
can only be usage errors are refused when the configuration is loaded, not half-way through a drill."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from restoredrill import proc
from restoredrill.config import load_config, parse_config
from restoredrill.durations import parse_duration
from restoredrill.errors import ConfigError
from restoredrill.evidence import CheckRecord
from restoredrill.report import redact as report_redact

TEN_MB = 10 * 1024 * 1024


def _seconds(work: Callable[[], object], tries: int = 1) -> float:
    """CPU seconds of the fastest of `tries` runs: the machine is shared, and waiting for a core is not the
    algorithm's cost."""
    best = float("inf")
    for _ in range(tries):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def test_redacting_a_10_mb_string_takes_well_under_a_second() -> None:
    text = "a" * TEN_MB  # the shape that once took minutes at 100% CPU: 20 KB took 6 s
    assert _seconds(lambda: proc.redact(text)) < 1.0
    assert _seconds(lambda: report_redact.redact(text)) < 1.0


# Each shape once made a redaction pattern scan to the end of the text from every position (quadratic).
# Time must grow linearly: 10x the text may cost ~10x (slack for a busy machine), never 100x.
ADVERSARIAL = {
    "letters": "a",
    "dotted": "a.",
    "password words": "password",
    "option-like": "--pass",
    "scheme and user, no password end": "x://u:p:",
    "many urls without @": "ab://user:pw/",
    "spaces after keys": "password" + " " * 100,
    "digits": "1",
    "nothing but secrets": "password=x aws_secret_access_key: y cipher-pass=z ",
    "non-ascii around secrets": "é password=x ",
}


@pytest.mark.parametrize("shape", list(ADVERSARIAL))
def test_redaction_time_grows_linearly_on_adversarial_text(shape: str) -> None:
    unit = ADVERSARIAL[shape]
    small, large = unit * (TEN_MB // 10 // len(unit)), unit * (TEN_MB // len(unit))
    for work in (
        proc.redact,
        report_redact.redact,
        lambda text: report_redact.config_secrets({"endpoint_url": text, "options": [text]}, env={}),
    ):
        base = max(_seconds(lambda work=work: work(small), tries=3), 0.05)
        took = _seconds(lambda work=work: work(large))
        assert took < 30 * base, (shape, took, base)  # quadratic would be 100x
        assert took < 5.0, (shape, took)


def test_bounded_redaction_still_masks_long_secrets() -> None:
    long_password = "Pw" + "x" * 2000
    text = f"postgresql://user:{long_password}@db/x HTTPS://a:{long_password}@h password='{long_password}'"
    redacted = report_redact.redact(text)
    assert "x" * 20 not in redacted
    assert redacted.count("***") == 3
    assert "postgresql://user:***@db/x" in redacted


def test_a_10_mb_duration_is_refused_quickly_without_echoing_it() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration("1" * TEN_MB)
    assert time.monotonic() - started < 1.0
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    "where",
    [
        'rpo = "{big}"\nrto = "1h"',  # a duration
        'rpo = "1d"\nrto = "1h"\nbig = "{big}"',  # an unknown key
    ],
)
def test_a_config_with_a_10_mb_value_is_refused_in_seconds(tmp_path: Path, where: str) -> None:
    config = tmp_path / "drills.toml"
    big = "1" * TEN_MB
    config.write_text(
        f'[objectives.logical]\n{where.format(big=big)}\n[databases.shop.logical]\nsource = "file:///x/"\n'
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert time.monotonic() - started < 3.0
    assert len(str(caught.value)) < 300


def test_a_10_mb_custom_sql_check_is_refused_in_seconds(tmp_path: Path) -> None:
    config = tmp_path / "drills.toml"
    config.write_text(
        '[objectives.logical]\nrpo = "1d"\nrto = "1h"\n[databases.shop.logical]\nsource = "file:///x/"\n'
        f'[[databases.shop.checks.sql]]\nname = "n"\nsql = "SELECT {"a." * (TEN_MB // 2)}"\nexpect = 1\n'
    )
    started = time.monotonic()
    with pytest.raises(ConfigError, match="larger than"):
        load_config(config)
    assert time.monotonic() - started < 3.0


GOOD = {
    "objectives": {"logical": {"rpo": "26h", "rto": "90m"}, "pgbackrest": {"rpo": "1h", "rto": "1h"}},
    "databases": {"shop": {"logical": {"source": "s3://bucket/postgres/logical/"}}},
}


def test_every_config_problem_is_named_one_line_each() -> None:
    data = {
        **GOOD,
        "databases": {"shop": {"logical": {"source": "s3://b/", "regoin": "x"}, "checks": {"min_rows": [{}]}}},
        "target": {"jobs": -1},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, origin="drills.toml")
    lines = str(caught.value).splitlines()
    assert "4 problems" in lines[0]
    assert "more problem" not in str(caught.value)
    for named in (
        "'databases.shop.logical.regoin' is not a known setting",
        "'databases.shop.checks.min_rows.0.table' is required but missing",
        "'databases.shop.checks.min_rows.0.min' is required but missing",
        "'target.jobs'",
    ):
        assert sum(named in line for line in lines) == 1, (named, lines)
    assert len(lines) == 5


def test_a_database_with_no_layer_is_a_usage_error() -> None:
    with pytest.raises(
        ConfigError, match=r"'databases\.shop' names no layer to drill \(give it a logical, pgbackrest or rds table\)"
    ):
        parse_config({**GOOD, "databases": {"shop": {}}})


@pytest.mark.parametrize("spec", ["yesterday", "2026-13-45", "1h30", ""])
def test_a_bad_pitr_target_is_refused_when_the_config_is_loaded(spec: str) -> None:
    data = {**GOOD, "databases": {"shop": {"pgbackrest": {"stanza": "main", "pitr_target": spec}}}}
    with pytest.raises(ConfigError, match=r"'databases\.shop\.pgbackrest\.pitr_target' is neither an ISO time nor"):
        parse_config(data)


@pytest.mark.parametrize("spec", ["1h", "2026-11-01T10:00:00Z", "2026-11-01 10:00:00+01:00"])
def test_good_pitr_targets_load(spec: str) -> None:
    data = {**GOOD, "databases": {"shop": {"pgbackrest": {"stanza": "main", "pitr_target": spec}}}}
    assert parse_config(data).databases["shop"].pgbackrest.pitr_target == spec  # type: ignore[union-attr]


@pytest.mark.parametrize("option", ["--repo1-cipher-pass=Sekret-Pass-1", "--repo2-cipher-pass", "--cipher-pass=x1234"])
def test_a_cipher_passphrase_in_pgbackrest_options_is_refused_pointing_at_the_variable(option: str) -> None:
    data = {**GOOD, "databases": {"shop": {"pgbackrest": {"stanza": "main", "options": [option]}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert "cipher_pass_env" in message
    assert "Sekret-Pass-1" not in message


def test_redacting_twice_changes_nothing_and_keeps_json_valid() -> None:
    text = "password = 'Pw-1x' password=Pw-2x aws_secret_access_key: K-3x cipher-pass=C-4x postgresql://u:U-5x@h/d"
    once = proc.redact(text)
    assert proc.redact(once) == once
    for secret in ("Pw-1x", "Pw-2x", "K-3x", "C-4x", "U-5x"):
        assert secret not in once
    document = json.dumps({"sql": once, "next": "kept"})
    assert json.loads(proc.redact(document)) == {"sql": once, "next": "kept"}


def test_check_records_are_redacted_where_they_are_made() -> None:
    record = CheckRecord(
        name="sql:n",
        outcome="failed",
        detail="returned 'postgresql://u:Url-Secret-42@h/db'",
        sql="SELECT 'postgresql://u:Url-Secret-42@h/db', password = 'Pw-Secret-43'",
    )
    assert "Url-Secret-42" not in record.detail
    assert "Url-Secret-42" not in (record.sql or "")
    assert "Pw-Secret-43" not in (record.sql or "")
