"""Secrets never leave the process: registered secrets and passwords in URLs or after `password=` are masked.

Its own module, importing nothing of restoredrill, so that errors.py can redact every message it makes
without importing proc.py (which raises those errors): the two once imported each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRETS: set[str] = set()
# Every pattern runs in time linear in the text, however large or hostile it is: each starts with a literal
# (so the engine skips ahead to it), and possessive quantifiers (`++`, `*+`) never give characters back, so a
# value that does not end as expected is not rescanned from every position. A 10 MB config string once made
# the old unanchored scheme pattern quadratic (minutes at 100% CPU, no output).
URL_USERINFO = re.compile(r"(://[^:/@\s]++:)([^@\s/]++)(@)")  # any scheme://user:password@
# Matched against the ASCII-lowercased UTF-8 bytes: a case-insensitive `re` pattern cannot skip ahead to its
# literal and costs ~0.3 s per 10 MB and pattern. Keywords, separators and quotes are ASCII, and UTF-8 never
# uses ASCII bytes inside a multi-byte character, so the byte offsets found are exact in the original text.
# (`password=` also covers `PGPASSWORD=`.)
# A value already masked is taken as just the mask, so redacting twice changes nothing: evidence JSON is
# redacted again on its way out, and `\S++` would otherwise swallow the closing `",` after `password=***`.
_VALUE = rb"(\*\*\*(?![^\s\"'])|'[^']*+'|\S++)"
_KEYED = [
    re.compile(rb"(password\s*+=\s*+)" + _VALUE),
    re.compile(rb"(aws_secret_access_key\s*+[=:]\s*+)" + _VALUE),
    re.compile(rb"(cipher-pass\s*+[=:]\s*+)" + _VALUE),
]
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret so that no log line, record or error message ever shows it."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def register_environment_secrets(env: Mapping[str, str] = os.environ) -> None:
    for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGBACKREST_REPO1_CIPHER_PASS"):
        register_secret(env.get(name))


def _mask_keyed_values(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    lowered = raw.lower()  # ASCII letters only: offsets stay the same
    spans = sorted(m.span(2) for pattern in _KEYED for m in pattern.finditer(lowered))
    if not spans:
        return text
    pieces, position = [], 0
    for start, end in spans:
        if start >= position:
            pieces += [raw[position:start], MASK.encode()]
        position = max(position, end)  # overlapping values (`password=cipher-pass=x`) are masked once
    pieces.append(raw[position:])
    return b"".join(pieces).decode("utf-8", "surrogatepass")


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _mask_keyed_values(text)
