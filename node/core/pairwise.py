"""Pairwise patient keys: one Ed25519 key per relationship, from one master secret.

A patient keeps one 32-byte master secret and shows each relationship (a
custodian, an insurer, a trial) a different key, so the chain cannot join the
relationships by key (docs/privacy.md)::

    seed = HKDF-SHA256(ikm = master, salt = none, info = "hygeia/pairwise/v1" || context)

(RFC 5869; no salt means 32 zero bytes; 32 bytes of output are the Ed25519
seed). A context is ``<kind>:<id>``, e.g. ``custodian:hospital-0`` or
``insurer:acme-health``: the same master and context always give the same key.

When a link is needed (an insurer checking that a claim's patient key and the
key of an EHR consent are the same patient), the patient signs a **link
statement** with both keys: the canonical JSON of ``{"purpose", "key_a",
"key_b", "nonce"}`` after the domain prefix ``hygeia/link/v1\\n``. Anyone checks it
offline with the two public keys (``verify_link``); it links those two keys for
whoever holds it, and nothing else. The ``nonce`` (32 random bytes, or a
verifier's challenge) makes each statement distinct; ``purpose`` names what it
is for and whom (e.g. ``claims:acme-health``).

A master file (mode 0600, written as key files are)::

    {"type": "hygeia-pairwise-master", "secret_hex": "<64 hex>"}
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from pathlib import Path
from typing import Any, Final

from node.core.codec import canonical_json
from node.core.hexstr import HEX64, HEX128
from node.core.keys import SigningKey, key_from_seed, public_key_hex, sign, verify
from node.core.secretfile import SecretFileError, read_secret_json, write_secret

__all__ = [
    "CONTEXT",
    "INFO_PREFIX",
    "LINK_PREFIX",
    "MASTER_TYPE",
    "PURPOSE",
    "PairwiseError",
    "derive_key",
    "hkdf_sha256",
    "load_master",
    "make_link",
    "new_master",
    "save_master",
    "verify_link",
]

INFO_PREFIX: Final = b"hygeia/pairwise/v1"
LINK_PREFIX: Final = b"hygeia/link/v1\n"
MASTER_TYPE: Final = "hygeia-pairwise-master"
MASTER_BYTES: Final = 32
# <kind>:<id>: a kind of relationship and a member id (or a trial id)
CONTEXT: Final = re.compile(r"[a-z][a-z0-9-]{0,31}:[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
PURPOSE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_LINK_FIELDS: Final = ("key_a", "key_b", "nonce", "purpose")
_HASH_LEN: Final = 32


class PairwiseError(Exception):
    """A bad context, master file or link statement; the message says what."""


# ------------------------------------------------------------------ HKDF (RFC 5869)
def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256: extract with ``salt`` (empty: 32 zero bytes), expand with ``info``
    to ``length`` bytes (at most 255 * 32)."""
    if not 0 < length <= 255 * _HASH_LEN:
        raise ValueError(f"HKDF-SHA256 gives 1..{255 * _HASH_LEN} bytes, not {length}")
    prk = hmac.digest(salt or bytes(_HASH_LEN), ikm, "sha256")
    out, block = b"", b""
    for counter in range(1, -(-length // _HASH_LEN) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
    return out[:length]


def derive_key(master: bytes, context: str) -> SigningKey:
    """The pairwise Ed25519 key of ``context`` (``<kind>:<id>``) under ``master``."""
    if len(master) != MASTER_BYTES:
        raise PairwiseError(f"a master secret is {MASTER_BYTES} bytes, got {len(master)}")
    if not CONTEXT.fullmatch(context):
        raise PairwiseError(
            f"context {context!r} must be <kind>:<id>, e.g. custodian:hospital-0 "
            f"(pattern {CONTEXT.pattern})"
        )
    return key_from_seed(hkdf_sha256(master, b"", INFO_PREFIX + context.encode(), 32))


# ------------------------------------------------------------------ master files
def new_master() -> bytes:
    return secrets.token_bytes(MASTER_BYTES)


def save_master(path: Path, master: bytes, *, force: bool = False) -> None:
    """Write a master file (mode 0600); ``PairwiseError`` if it exists and not ``force``."""
    if len(master) != MASTER_BYTES:
        raise PairwiseError(f"a master secret is {MASTER_BYTES} bytes, got {len(master)}")
    doc = {"type": MASTER_TYPE, "secret_hex": master.hex()}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    try:
        write_secret(path, data, force=force, what="master file")
    except SecretFileError as exc:
        raise PairwiseError(str(exc)) from None


def load_master(path: Path) -> bytes:
    """The secret of a master file; ``PairwiseError`` for a missing, loose (readable by
    others) or malformed file."""
    try:
        doc = read_secret_json(path, "master file")
    except SecretFileError as exc:
        raise PairwiseError(str(exc)) from None
    if not isinstance(doc, dict):
        doc = {}
    secret = doc.get("secret_hex")
    if doc.get("type") != MASTER_TYPE or not isinstance(secret, str):
        raise PairwiseError(f'master file {path}: expected {{"type": "{MASTER_TYPE}", ...}}')
    if not HEX64.fullmatch(secret):
        raise PairwiseError(f"master file {path}: secret_hex must be 64 lowercase hex")
    return bytes.fromhex(secret)


# ------------------------------------------------------------------ link statements
def _message(statement: dict[str, str]) -> bytes:
    return LINK_PREFIX + canonical_json(statement)


def make_link(
    key_a: SigningKey, key_b: SigningKey, purpose: str, nonce: bytes | None = None
) -> dict[str, Any]:
    """A link statement of two of the patient's keys, signed by both:
    ``{"statement": {...}, "sig_a": hex, "sig_b": hex}``."""
    if not PURPOSE.fullmatch(purpose):
        raise PairwiseError(f"purpose {purpose!r} must match {PURPOSE.pattern}")
    if public_key_hex(key_a) == public_key_hex(key_b):
        raise PairwiseError("a link joins two different keys")
    nonce = secrets.token_bytes(32) if nonce is None else nonce
    if len(nonce) != 32:
        raise PairwiseError(f"a link's nonce is 32 bytes, got {len(nonce)}")
    statement = {
        "purpose": purpose,
        "key_a": public_key_hex(key_a),
        "key_b": public_key_hex(key_b),
        "nonce": nonce.hex(),
    }
    message = _message(statement)
    return {
        "statement": statement,
        "sig_a": sign(key_a, message).hex(),
        "sig_b": sign(key_b, message).hex(),
    }


def verify_link(link: Any) -> dict[str, str]:
    """The statement of a link whose two signatures verify; ``PairwiseError`` saying
    what is wrong otherwise. The caller still checks that the keys, the purpose and
    the nonce are the ones it expects."""
    if not isinstance(link, dict) or set(link) != {"statement", "sig_a", "sig_b"}:
        raise PairwiseError('a link is {"statement": {...}, "sig_a": hex, "sig_b": hex}')
    statement = link["statement"]
    if not isinstance(statement, dict) or sorted(statement) != sorted(_LINK_FIELDS):
        raise PairwiseError(f"a link's statement has exactly {', '.join(_LINK_FIELDS)}")
    if not all(isinstance(v, str) for v in statement.values()):
        raise PairwiseError("a link's statement holds strings only")
    for name in ("key_a", "key_b", "nonce"):
        if not HEX64.fullmatch(statement[name]):
            raise PairwiseError(f"statement {name} must be 64 lowercase hex")
    if not PURPOSE.fullmatch(statement["purpose"]):
        raise PairwiseError(f"statement purpose must match {PURPOSE.pattern}")
    if statement["key_a"] == statement["key_b"]:
        raise PairwiseError("a link joins two different keys")
    message = _message(statement)
    for sig_name, key_name in (("sig_a", "key_a"), ("sig_b", "key_b")):
        sig = link[sig_name]
        if not isinstance(sig, str) or not HEX128.fullmatch(sig):
            raise PairwiseError(f"{sig_name} must be 128 lowercase hex")
        if not verify(bytes.fromhex(statement[key_name]), message, bytes.fromhex(sig)):
            raise PairwiseError(f"{sig_name} is not {key_name}'s signature of the statement")
    return dict(statement)
