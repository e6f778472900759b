"""Secrets never reach a report: every byte the report layer writes passes through `redact`.

The engine's own redaction (`proc.redact`: registered secrets, passwords in any URL such as
`https://user:password@host` or after `password=`) is applied, after learning the secrets written in the
configuration file: values of keys that name a secret, the environment variables that `*_env` keys point
at, passwords in URLs and `--...-secret=value` style options.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from restoredrill import proc

_SECRET_KEY = re.compile(r"(?i)(pass|secret|token|credential|private|api[_-]?key|signing[_-]?key)")
# Bounded: option names are short, and two unbounded runs around a keyword rescan a long value quadratically.
_SECRET_OPTION = re.compile(r"(?i)^--?[\w.-]{0,64}(?:pass|secret|token|credential)[\w.-]{0,64}=(.+)$")


def redact(text: str) -> str:
    """The engine's redaction (registered secrets, passwords inside any URL or after `password=`)."""
    return proc.redact(text)


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _walk(value, str(name))
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, key)
    else:
        yield key, node


def config_secrets(data: dict[str, Any], env: dict[str, str] | None = None) -> set[str]:
    """Every value in a parsed drills.toml that must never be shown."""
    env = dict(os.environ) if env is None else env
    found: set[str] = set()
    for key, value in _walk(data):
        if not isinstance(value, str):
            continue
        if key.endswith("_env"):
            found.add(env.get(value, ""))
        elif _SECRET_KEY.search(key):
            found.add(value)
        for match in proc.URL_USERINFO.finditer(value):
            found.add(match.group(2))
        option = _SECRET_OPTION.match(value.strip())
        if option:
            found.add(option.group(1))
    return {secret for secret in found if len(secret) >= 4}


def register_config_secrets(path: Path | None) -> int:
    """Teach the redaction the secrets of a configuration file; returns how many it learned."""
    if path is None:
        return 0
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return 0  # an unreadable configuration is load_config's sentence to say, not the report's
    secrets = config_secrets(data)
    for secret in secrets:
        proc.register_secret(secret)
    return len(secrets)
