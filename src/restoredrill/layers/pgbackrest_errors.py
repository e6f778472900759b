"""pgBackRest's own error kinds decide whether a failure is a defect of the backup or a drill that could not run.

pgBackRest prints `ERROR: [NNN]: message`, and often the real cause on the following indented lines as
`[KindError] message` (a restore fails with [075] "no backup set found" because backup.info raised
[FileMissingError]; an archive-get fails with [042] because the file raised [FormatError]). The innermost
kind named is the most precise, so it decides; the outer code decides only when no inner kind is given.
The codes are pgBackRest's (build/error.yaml in its source).
"""

from __future__ import annotations

import re

from restoredrill.errors import BackupDefect, CouldNotVerify, RestoreDrillError

# code -> kind, as pgBackRest names them (the subset a read-only drill can meet).
KINDS = {
    26: "ChecksumError",
    28: "FileInvalidError",
    29: "FormatError",
    31: "OptionInvalidError",
    37: "OptionRequiredError",
    39: "ProtocolError",
    41: "FileOpenError",
    42: "FileReadError",
    44: "ArchiveMismatchError",
    49: "HostConnectError",
    50: "LockAcquireError",
    51: "BackupMismatchError",
    53: "PathOpenError",
    55: "FileMissingError",
    58: "DbMismatchError",
    72: "HostInvalidError",
    73: "PathMissingError",
    75: "BackupSetInvalidError",
    82: "ArchiveTimeoutError",
    95: "CryptoError",
    99: "JsonFormatError",
    101: "ServiceError",
    103: "RepoInvalidError",
    105: "AccessError",
}
# Missing or corrupt repository content: the backup is bad, whatever else is true.
DEFECT_KINDS = frozenset(
    {
        "ChecksumError",
        "FileInvalidError",
        "FormatError",
        "ArchiveMismatchError",
        "BackupMismatchError",
        "FileMissingError",
        "DbMismatchError",
        "PathMissingError",
        "JsonFormatError",
        "RepoInvalidError",
    }
)
# The repository could not be reached or read at all: nothing can be said about the backup.
UNREACHABLE_KINDS = frozenset(
    {"HostConnectError", "HostInvalidError", "ServiceError", "ProtocolError", "AccessError", "LockAcquireError"}
)
# Content that does not match its checksum or does not decompress: pgBackRest words it several ways.
CORRUPT_KINDS = frozenset({"ChecksumError", "FormatError", "FileInvalidError", "JsonFormatError"})
_CORRUPT = re.compile(r"(checksum|lz4 error|compressed data|does not match expected)", re.I)
_ERROR_LINE = re.compile(r"(?:ERROR|WARN): \[(\d{3})\]:")
_INNER_KIND = re.compile(r"\[?\b([A-Z][A-Za-z]+Error)\]?:? ")
_PERMISSION = re.compile(r"permission denied", re.I)
# pgBackRest's words for a key that does not open the repository (a wrong cipher passphrase).
_WRONG_KEY = re.compile(r"(unable to flush|bad decrypt|wrong final block length|cipher|decrypt)", re.I)


def error_text(text: str) -> str:
    """pgBackRest's error lines whole: the ERROR/WARN line with every indented line that belongs to it."""
    lines = text.splitlines()
    picked: list[str] = []
    for index, line in enumerate(lines):
        if not _ERROR_LINE.search(line):
            continue
        block = [line.split("P00", 1)[-1].strip() if "P00" in line else line.strip()]
        for more in lines[index + 1 :]:
            if not more.startswith((" ", "\t")) or _ERROR_LINE.search(more):
                break
            block.append(more.strip())
        picked.append(" ".join(block))
    return " ".join(picked) if picked else (lines[-1].strip() if lines else "")


def kinds_in(text: str) -> list[str]:
    """Every error kind named in pgBackRest's output, innermost (the cause) first."""
    inner = [m.group(1) for m in _INNER_KIND.finditer(text)]
    outer = [KINDS.get(int(code), f"error [{code}]") for code in _ERROR_LINE.findall(text)]
    return [*reversed(inner), *[k for k in outer if k not in inner]]


def wrong_key(text: str, encrypted: bool) -> bool:
    """True only when pgBackRest's words say the key does not decrypt the repository.

    Either a CryptoError about decryption, or, in an encrypted repository, an info file AND its copy that
    both read as garbage from their first line: what pgBackRest 2.45 prints for a wrong passphrase (one
    damaged file would not take its copy with it)."""
    if "CryptoError" in text and _WRONG_KEY.search(text):
        return True
    return encrypted and "FormatError" in text and text.count("outside of section at line 1") >= 2


def printable(text: str) -> str:
    """pgBackRest's message whole, on one line; the bytes of an undecryptable file shown as '?'."""
    return " ".join("".join(ch if ch.isprintable() and ch != "\ufffd" else "?" for ch in text).split())


def classify(text: str, doing: str, *, encrypted: bool = False) -> RestoreDrillError:
    """A BackupDefect or CouldNotVerify for pgBackRest's failure output while `doing` something."""
    quoted = printable(error_text(text))
    kinds = kinds_in(text)
    named = kinds[0] if kinds else "no error kind"
    if wrong_key(text, encrypted):
        return CouldNotVerify(
            f"pgBackRest cannot decrypt the repository with this passphrase (a wrong cipher passphrase) "
            f"while {doing}: {quoted}"
        )
    if _PERMISSION.search(text) and not any(k in DEFECT_KINDS for k in kinds[:1]):
        return CouldNotVerify(f"permission denied in the repository while {doing} ({named}): {quoted}")
    if _CORRUPT.search(text) or (kinds and kinds[0] in CORRUPT_KINDS):
        return BackupDefect(f"a file in the repository is corrupt ({named}) while {doing}: {quoted}")
    for kind in kinds:
        if kind in DEFECT_KINDS:
            return BackupDefect(f"the repository is damaged ({kind}) while {doing}: {quoted}")
        if kind in UNREACHABLE_KINDS:
            return CouldNotVerify(f"the repository is unreachable ({kind}) while {doing}: {quoted}")
    if re.search(r"(unable to connect|could not connect|timeout|resolve)", text, re.I):
        return CouldNotVerify(f"the repository is unreachable while {doing}: {quoted}")
    return CouldNotVerify(f"pgBackRest failed ({named}) while {doing}: {quoted}")
