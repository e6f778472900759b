"""Tamper evidence: a manifest with the SHA-256 of every record and of the report, optionally signed
with Ed25519, and the check of a report folder against its manifests.

The signing key is an unencrypted PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`),
given as a file path or as the PEM text itself (a CI secret) in RESTOREDRILL_SIGNING_KEY, or with
--signing-key. It is registered as a secret, so it can never reach a report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from restoredrill import __version__, history_chain, proc
from restoredrill.errors import ConfigError
from restoredrill.evidence import iso, utcnow
from restoredrill.history_chain import HISTORY_FILE
from restoredrill.report import attestation

# cryptography is imported where a key is read or a signature checked: most runs sign nothing, and its
# import is ~10 ms of every run's fixed cost.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "restoredrill-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = ".manifest.sig"
KEY_ENV = "RESTOREDRILL_SIGNING_KEY"
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{16,}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def raw_public_bytes(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(public)).hexdigest()[:16]


def load_signing_key(source: str | Path | None = None) -> Ed25519PrivateKey | None:
    """The key named by --signing-key, else by RESTOREDRILL_SIGNING_KEY (a path or the PEM); None if neither.

    The value is never echoed: people paste the PEM itself, in quotes or with literal `\\n`, where a path
    was expected, and a message quoting "the file" would print the private key.
    """
    origin = "--signing-key" if source is not None else KEY_ENV
    value = str(source) if source is not None else os.environ.get(KEY_ENV, "")
    if not value.strip():
        return None
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = value.strip().strip("\"'").strip()
    for token in text.replace("\\n", "\n").split():
        if _KEY_MATERIAL.fullmatch(token):
            proc.register_secret(token)  # base64 that may be key material, before any message can carry it
    what_it_must_be = f"{origin} must name a PEM key file or hold the PEM text"
    if "-----BEGIN" in text:
        pem = text.replace("\\n", "\n").encode()
    else:
        try:
            pem = Path(text).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"the signing key file named by {origin} cannot be read ({exc.strerror}): {what_it_must_be}"
            ) from None
    proc.register_secret(pem.decode(errors="replace").strip())
    for line in pem.decode(errors="replace").splitlines():
        if not line.startswith("-----"):
            proc.register_secret(line.strip())  # every base64 line of the key body, in case it is split up
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"the signing key from {origin} is not an unencrypted PEM private key: {what_it_must_be} "
            "(make one with: openssl genpkey -algorithm ed25519 -out signing-key.pem)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the signing key from {origin} is not an Ed25519 key (reports are signed with Ed25519)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the public key file {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{path} is not a PEM public key (export it with: openssl pkey -in signing-key.pem -pubout)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def write_manifest(
    reports_dir: Path,
    name: str,
    run_id: str,
    files: list[Path],
    key: Ed25519PrivateKey | None,
    history_head: tuple[int, str] | None = None,
) -> list[Path]:
    """`<name>.manifest.json` with the hash of each file (relative to reports_dir) and the history head, its
    signature, and the same as a signed DSSE envelope (in-toto Statement) for standard tooling."""
    entries = [
        {"path": p.relative_to(reports_dir).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in files
    ]
    manifest = {
        "format": FORMAT,
        "run_id": run_id,
        "generated_at": iso(utcnow()),
        "generator": f"restoredrill {__version__}",
        "files": entries,
    }
    if history_head is not None:
        # The chain's last line has no successor to anchor it: the manifest does, so a cut tail is detected.
        manifest["history"] = {"file": HISTORY_FILE, "entries": history_head[0], "head_sha256": history_head[1]}
    path = reports_dir / f"{name}{MANIFEST_SUFFIX}"
    body = (json.dumps(manifest, indent=2) + "\n").encode()
    path.write_bytes(body)
    written = [path]
    signature_path = reports_dir / f"{name}{SIGNATURE_SUFFIX}"
    if key is not None:
        public = key.public_key()
        signature = {
            "algorithm": "ed25519",
            "key_id": key_id(public),
            "public_key": base64.b64encode(raw_public_bytes(public)).decode(),
            "signed_file": path.name,
            "signature": base64.b64encode(key.sign(body)).decode(),
        }
        signature_path.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
        written.append(signature_path)
        dsse = attestation.envelope_path(path, MANIFEST_SUFFIX)
        body = attestation.statement(path.name, hashlib.sha256(body).hexdigest(), manifest)
        dsse.write_text(json.dumps(attestation.envelope(body, key, key_id(public)), indent=2) + "\n")
        written.append(dsse)
    else:
        # A stale signature or envelope of an earlier manifest would not verify.
        signature_path.unlink(missing_ok=True)
        attestation.envelope_path(path, MANIFEST_SUFFIX).unlink(missing_ok=True)
    return written


@dataclass
class Verification:
    manifests: list[str] = field(default_factory=list)
    files: int = 0
    signed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    envelopes: list[str] = field(default_factory=list)  # DSSE envelopes whose signature verified
    history: history_chain.ChainCheck | None = None


def _inside(folder: Path, relative: str) -> Path | None:
    candidate = (folder / relative).resolve()
    return candidate if candidate.is_relative_to(folder.resolve()) and not Path(relative).is_absolute() else None


def _check_signature(
    manifest: Path, body: bytes, trusted: Ed25519PublicKey | None, result: Verification
) -> Ed25519PublicKey | None:
    """The manifest's signature; returns the key it verified with (None when unsigned or bad)."""
    sig_path = manifest.with_name(manifest.name.removesuffix(MANIFEST_SUFFIX) + SIGNATURE_SUFFIX)
    if not sig_path.exists():
        if trusted is not None:
            result.problems.append(f"{manifest.name} is not signed, but a public key was given to check it with")
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = json.loads(sig_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(sig["signature"], validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"], validate=True))
    except (OSError, ValueError, KeyError, TypeError):
        result.problems.append(f"{sig_path.name} is not a readable signature file")
        return None
    key = trusted or embedded
    try:
        key.verify(signature, body)
    except InvalidSignature:
        who = "the given public key" if trusted else f"its own key {key_id(embedded)}"
        result.problems.append(f"the signature of {manifest.name} does not verify with {who}: the manifest was altered")
        return None
    result.signed.append(manifest.name)
    if trusted is None:
        result.notes.append(
            f"{manifest.name} is signed by key {key_id(embedded)}; pass --public-key to check it is your key"
        )
    return key


def _check_envelope(folder: Path, manifest: Path, key: Ed25519PublicKey | None, result: Verification) -> None:
    path = attestation.envelope_path(manifest, MANIFEST_SUFFIX)
    if not path.exists():
        if key is not None:
            result.notes.append(f"{manifest.name} has no DSSE envelope ({path.name}): signed before envelopes existed")
        return
    problems, checked = attestation.check_envelope(path, folder, manifest, key)
    result.problems += problems
    if checked and not problems:
        result.envelopes.append(path.name)
    elif not checked:
        result.problems.append(
            f"{path.name} cannot be checked: {manifest.name} has no valid signature to take a key from"
        )


def manifest_head(data: dict[str, object]) -> tuple[int, str] | None:
    found = data.get("history")
    if not isinstance(found, dict):
        return None
    entries, digest = found.get("entries"), found.get("head_sha256")
    return (entries, digest) if isinstance(entries, int) and isinstance(digest, str) else None


def _check_history(folder: Path, heads: dict[str, tuple[int, str]], result: Verification) -> None:
    """The hash chain of history.jsonl, anchored by the head each manifest recorded."""
    path = folder / HISTORY_FILE
    if not path.is_file():
        if heads:
            result.problems.append(f"{HISTORY_FILE} is missing, but {', '.join(sorted(heads))} recorded its head")
        return
    check = history_chain.verify(history_chain.parse(path), heads)
    result.history = check
    result.problems += check.problems
    result.notes += check.notes


def verify_folder(folder: Path, trusted: Ed25519PublicKey | None = None) -> Verification:
    """Every manifest in a report folder against the files it names (and its signature, if any)."""
    if not folder.is_dir():
        raise ConfigError(f"the report folder {folder} does not exist")
    manifests = sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))
    if not manifests:
        raise ConfigError(f"{folder} holds no report manifest (*{MANIFEST_SUFFIX}): nothing to verify")
    result = Verification()
    heads: dict[str, tuple[int, str]] = {}
    for manifest in manifests:
        result.manifests.append(manifest.name)
        body = manifest.read_bytes()
        try:
            data = json.loads(body)
            entries = [(str(e["path"]), str(e["sha256"]), int(e["size"])) for e in data["files"]]
            if data.get("format") != FORMAT:
                raise ValueError(data.get("format"))
        except (ValueError, KeyError, TypeError):
            result.problems.append(f"{manifest.name} is not a readable restoredrill manifest")
            continue
        key = _check_signature(manifest, body, trusted, result)
        _check_envelope(folder, manifest, key, result)
        head = manifest_head(data)
        if head is not None:
            heads[manifest.name] = head
        for relative, digest, size in entries:
            path = _inside(folder, relative)
            if path is None:
                result.problems.append(f"{manifest.name} names {relative}, which is outside the report folder")
            elif not path.is_file():
                result.problems.append(f"{relative} is missing (listed in {manifest.name})")
            elif path.stat().st_size != size or sha256_file(path) != digest:
                result.problems.append(f"{relative} does not match its SHA-256 in {manifest.name}: it was changed")
            else:
                result.files += 1
    _check_history(folder, heads, result)
    return result
