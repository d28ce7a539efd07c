"""Ed25519 keys (PyNaCl): key files, signing, verification, batch verification.

Key file (``<home>/node_key.json`` or wherever the caller says), mode 0600::

    {"type": "ed25519", "seed_hex": "<64 hex>", "public_key_hex": "<64 hex>"}

``load_key`` also accepts a file holding just the 64-hex seed (one line), so a
key made by another tool can be dropped in. ``public_key_hex`` in the JSON form
is informational and checked against the seed when present. A key file that
other users may read or write (any of the mode bits 0077, as ssh refuses) is
refused: the key may already have leaked, and ``chmod 600`` is the operator's
decision to make, not something to carry on through with a warning.

``save_key`` never overwrites an existing file unless ``force``: the key is
written to a temporary file created with ``O_CREAT | O_EXCL`` and mode 0600,
fsynced, then linked into place (``link`` fails if the target exists) or, with
``force``, renamed over it. A crash leaves either no key or a complete one.

``ValidatorVerifier`` and ``KeySigner`` are the Ed25519 implementations of
``consensus.crypto.Verifier`` / ``Signer``. ``verify_batch`` spreads many
verifications over a thread pool: libsodium runs with the GIL released, so the
threads really use several cores.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import nacl.exceptions
import nacl.signing

from node.core.hexstr import HEX64
from node.core.secretfile import SecretFileError, loose_mode_error, write_secret

__all__ = [
    "KeyFileError",
    "KeySigner",
    "ValidatorVerifier",
    "generate_key",
    "key_from_seed",
    "load_key",
    "loose_mode_error",
    "public_key_bytes",
    "public_key_hex",
    "save_key",
    "sign",
    "verify",
    "verify_batch",
]

SigningKey = nacl.signing.SigningKey


class KeyFileError(Exception):
    """A key file that is missing, unreadable, malformed, or in the way."""


# ------------------------------------------------------------------ keys
def generate_key() -> SigningKey:
    return nacl.signing.SigningKey.generate()


def key_from_seed(seed: bytes) -> SigningKey:
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
    return nacl.signing.SigningKey(seed)


def public_key_bytes(key: SigningKey) -> bytes:
    return bytes(key.verify_key)


def public_key_hex(key: SigningKey) -> str:
    return bytes(key.verify_key).hex()


def sign(key: SigningKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data`` (RFC 8032, deterministic)."""
    return bytes(key.sign(data).signature)


def verify(public_key: bytes, data: bytes, sig: bytes) -> bool:
    """True when ``sig`` is a valid signature of ``data`` by ``public_key``.

    Malformed keys and signatures (wrong length, not a curve point) are simply
    invalid: this never raises for bad input bytes.
    """
    if len(public_key) != 32 or len(sig) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(data, sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


# ------------------------------------------------------------------ key files
def _key_json(key: SigningKey) -> bytes:
    doc = {
        "type": "ed25519",
        "seed_hex": bytes(key).hex(),
        "public_key_hex": public_key_hex(key),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def save_key(path: str | os.PathLike[str], key: SigningKey, *, force: bool = False) -> None:
    """Write ``key`` to ``path`` (mode 0600); ``KeyFileError`` if it exists and not ``force``."""
    try:
        write_secret(Path(path), _key_json(key), force=force, what="key file")
    except SecretFileError as exc:
        raise KeyFileError(str(exc)) from None


def load_key(
    path: str | os.PathLike[str], *, on_warning: Callable[[str], None] | None = None
) -> SigningKey:
    """Read a key file written by ``save_key`` (or a bare 64-hex seed).

    Raises ``KeyFileError`` saying what is wrong, including for a file that other
    users may read or write. ``on_warning`` is accepted for compatibility and no
    longer called: what it used to report is now an error.
    """
    source = Path(path)
    try:
        st = source.stat()
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {source} (create one with `hygeia init`)") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {source}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {source} is not a regular file")
    loose = loose_mode_error(source, st.st_mode, "key file")
    if loose is not None:
        raise KeyFileError(loose)
    try:
        raw = source.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {source}: {e.strerror}") from None
    if len(raw) > 4096:
        raise KeyFileError(f"key file {source} is {len(raw)} bytes; not a key file")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {source} is not text; expected JSON or a hex seed") from None
    if HEX64.fullmatch(text.lower()):
        return nacl.signing.SigningKey(bytes.fromhex(text))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise KeyFileError(
            f"key file {source} is malformed: expected JSON "
            '{"type": "ed25519", "seed_hex": "<64 hex>"} or a 64-hex seed'
        ) from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"key file {source} is malformed: expected a JSON object")
    if doc.get("type") != "ed25519":
        raise KeyFileError(
            f"key file {source}: unsupported key type {doc.get('type')!r}, expected 'ed25519'"
        )
    seed = doc.get("seed_hex")
    if not isinstance(seed, str) or not HEX64.fullmatch(seed.lower()):
        raise KeyFileError(f"key file {source}: seed_hex must be 64 hex digits (32 bytes)")
    key = nacl.signing.SigningKey(bytes.fromhex(seed))
    pub = doc.get("public_key_hex")
    if pub is not None and (not isinstance(pub, str) or pub.lower() != public_key_hex(key)):
        raise KeyFileError(
            f"key file {source}: public_key_hex does not match the seed (file corrupt or edited)"
        )
    return key


# ------------------------------------------------------------------ consensus interfaces
class KeySigner:
    """``consensus.crypto.Signer`` with an Ed25519 key."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(data).signature)


class ValidatorVerifier:
    """``consensus.crypto.Verifier`` over the genesis validator keys (index = position)."""

    def __init__(self, pubkeys: Sequence[bytes]) -> None:
        keys: list[nacl.signing.VerifyKey] = []
        for i, pk in enumerate(pubkeys):
            if len(pk) != 32:
                raise ValueError(f"validator {i}: public key must be 32 bytes, got {len(pk)}")
            keys.append(nacl.signing.VerifyKey(bytes(pk)))
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= validator < len(self._keys) or len(sig) != 64:
            return False
        try:
            self._keys[validator].verify(data, sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
            return False
        return True


# ------------------------------------------------------------------ batch verification
VerifyItem = tuple[bytes, bytes, bytes]  # (public key, message, signature)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _default_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="hygeia-verify"
            )
        return _pool


def _verify_chunk(items: Sequence[VerifyItem]) -> list[bool]:
    return [verify(pk, msg, sig) for pk, msg, sig in items]


def verify_batch(
    items: Sequence[VerifyItem],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    min_parallel: int = 32,
) -> list[bool]:
    """Verify many ``(public_key, message, signature)`` triples; one bool per item, in order.

    Batches smaller than ``min_parallel`` are verified inline; larger ones are
    cut into one chunk per worker and run on ``executor`` (default: a shared
    pool with one thread per CPU). Blocking: call it from a worker thread
    (``loop.run_in_executor``) when on an event loop.
    """
    n = len(items)
    if workers is None:
        workers = os.cpu_count() or 1
    if n < min_parallel or workers <= 1:
        return _verify_chunk(items)
    pool = executor or _default_pool()
    size = -(-n // workers)
    chunks = [items[i : i + size] for i in range(0, n, size)]
    out: list[bool] = []
    for part in pool.map(_verify_chunk, chunks):
        out.extend(part)
    return out
