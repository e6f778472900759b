"""The report's manifest as an in-toto Statement v1 in a DSSE envelope, signed with the same Ed25519 key.

The restoredrill manifest needs restoredrill (or this README) to check; the envelope is a standard form an
auditor checks with standard tools (README, "Verify without restoredrill"): openssl over the DSSE
pre-authentication encoding, then `sha256sum -c` over the subjects.

- subjects: the manifest itself and every file it lists, by path relative to the report folder, with sha256;
- predicate: the run, the generator and the history head the manifest recorded (the chain's anchor);
- signature: Ed25519 over PAE("application/vnd.in-toto+json", payload), keyid as in the .manifest.sig file.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

from restoredrill.stores import sha256_file

# cryptography is imported only where a signature is checked: most runs sign nothing (see integrity.py).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://restoredrill.dev/attestation/drill-report/v1"
ENVELOPE_SUFFIX = ".dsse.json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is signed, so the type cannot be swapped under a signature."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(manifest_name: str, manifest_sha256: str, manifest: dict[str, object]) -> dict[str, object]:
    files = manifest.get("files")
    subjects = [{"name": manifest_name, "digest": {"sha256": manifest_sha256}}]
    for entry in files if isinstance(files, list) else []:
        subjects.append({"name": entry["path"], "digest": {"sha256": entry["sha256"]}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": manifest.get("run_id"),
            "generated_at": manifest.get("generated_at"),
            "generator": manifest.get("generator"),
            "manifest": manifest_name,
            "history": manifest.get("history"),
        },
    }


def envelope(body: dict[str, object], key: Ed25519PrivateKey, keyid: str) -> dict[str, object]:
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()}],
    }


def envelope_path(manifest: Path, suffix: str) -> Path:
    return manifest.with_name(manifest.name.removesuffix(suffix) + ENVELOPE_SUFFIX)


def check_envelope(path: Path, folder: Path, manifest: Path, key: Ed25519PublicKey | None) -> tuple[list[str], bool]:
    """(problems, signature checked) for one envelope: its signature (when a key is known) and every subject."""
    name = path.name
    try:
        data = json.loads(path.read_bytes())
        payload = base64.b64decode(data["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in data["signatures"]]
        body = json.loads(payload)
        subjects = [(str(s["name"]), str(s["digest"]["sha256"])) for s in body["subject"]]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{name} is not a readable DSSE envelope with an in-toto Statement"], False
    problems = []
    if data.get("payloadType") != PAYLOAD_TYPE or body.get("_type") != STATEMENT_TYPE:
        problems.append(f"{name} does not hold an in-toto Statement v1 ({PAYLOAD_TYPE})")
    if body.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"{name} has predicateType {body.get('predicateType')!r}, not {PREDICATE_TYPE}")
    checked = False
    if key is not None:
        if not any(_verifies(key, sig, payload) for sig in signatures):
            problems.append(f"the signature of {name} does not verify: the statement was altered")
        checked = True
    if manifest.name not in {subject for subject, _ in subjects}:
        problems.append(f"{name} does not name {manifest.name} among its subjects")
    for subject, digest in subjects:
        target = (folder / subject).resolve()
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            problems.append(f"{subject} is missing (a subject of {name})")
        elif sha256_file(target) != digest:
            problems.append(f"{subject} does not match its sha256 in {name}: it was changed")
    return problems, checked


def _verifies(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, pae(PAYLOAD_TYPE, payload))
    except InvalidSignature:
        return False
    return True
