"""Transactions: validation, signing bytes, hash, signatures, and the payload rules.

A transaction is the JSON object (docs/transactions.md)::

    {"chain_id": str, "type": str, "body": {...}, "signer": <64 hex>,
     "nonce": int, "sig": <128 hex>}

with exactly these keys. ``signer`` is the lower-case hex Ed25519 public key,
``sig`` the lower-case hex signature over the *signing bytes* = canonical JSON
(``node.core.codec``) of the object without ``"sig"``; the transaction hash is the
lower-case hex SHA-256 of the signing bytes (so it does not depend on the
signature). ``type`` matches ``^[a-z]+(\\.[a-z_]+)+$`` (at most 64 characters),
``nonce`` is in ``0 .. 2^63-1``, ``body`` is an object. ``docs/transactions.md``
has the full rule and a worked example.

A ``Tx`` is decoded once: it keeps the parsed object, its *wire bytes*
(canonical JSON of the full transaction: what blocks and gossip carry), its
signing bytes and hash, so nothing is re-encoded to be re-hashed.

``TxPayloadRules`` is ``consensus.crypto.PayloadRules`` for the node: a request
is the wire bytes of one transaction, its id the 32-byte hash, a payload's root
the RFC 6962 Merkle root over the hashes, and a payload is valid when every
item is a canonical, correctly signed transaction of this chain and no hash
repeats. A bounded LRU cache of decoded/verified transactions lets the mempool's
verification be reused when the same bytes come back in a proposal.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final

import nacl.signing

from consensus.merkle import merkle_root
from node.core.codec import (
    CodecError,
    canonical_json,
    canonical_json_unchecked,
    parse_json,
)
from node.core.hexstr import HEX64, HEX128
from node.core.keys import sign, verify, verify_batch

__all__ = [
    "MAX_NONCE",
    "MAX_TX_BYTES",
    "MAX_TX_DEPTH",
    "TX_FIELDS",
    "Tx",
    "TxCache",
    "TxError",
    "TxPayloadRules",
    "build_tx",
    "decode_tx",
    "tx_from_json_obj",
]

TX_FIELDS: Final = ("body", "chain_id", "nonce", "sig", "signer", "type")
MAX_NONCE: Final = 2**63 - 1
MAX_TX_BYTES: Final = 64 * 1024
MAX_TX_DEPTH: Final = 32
MAX_CHAIN_ID_LEN: Final = 128
MAX_TYPE_LEN: Final = 64

_TYPE_RE = re.compile(r"[a-z]+(\.[a-z_]+)+")


class TxError(ValueError):
    """A transaction that is malformed, of another chain, or badly signed.

    ``code`` is a stable machine-readable reason for API errors: ``malformed``,
    ``too-large``, ``missing-field``, ``unknown-field``, ``bad-field``,
    ``wrong-chain`` or ``bad-signature``; ``field`` names the field when one is
    to blame.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        self.code = code
        self.field = field
        super().__init__(message)


# ------------------------------------------------------------------ validation
def _field_error(name: str, want: str, got: Any) -> TxError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return TxError("bad-field", f"tx.{name}: must be {want}, got {shown}", name)


def _check_chain_id(v: Any) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= MAX_CHAIN_ID_LEN:
        raise _field_error("chain_id", f"a non-empty string of at most {MAX_CHAIN_ID_LEN}", v)
    return v


def _check_type(v: Any) -> str:
    if not isinstance(v, str) or len(v) > MAX_TYPE_LEN or not _TYPE_RE.fullmatch(v):
        raise _field_error(
            "type",
            f"a dotted name like 'data.anchor' (^[a-z]+(\\.[a-z_]+)+$, <= {MAX_TYPE_LEN})",
            v,
        )
    return v


def _check_body(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _field_error("body", "a JSON object", v)
    return v


def _check_signer(v: Any) -> str:
    if not isinstance(v, str) or not HEX64.fullmatch(v):
        raise _field_error("signer", "64 lower-case hex digits (an Ed25519 public key)", v)
    return v


def _check_nonce(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_NONCE:
        raise _field_error("nonce", f"an integer in 0..{MAX_NONCE}", v)
    return v


def _check_sig(v: Any) -> str:
    if not isinstance(v, str) or not HEX128.fullmatch(v):
        raise _field_error("sig", "128 lower-case hex digits (an Ed25519 signature)", v)
    return v


def _check_keys(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TxError("malformed", f"a transaction is a JSON object, got {type(obj).__name__}")
    for name in TX_FIELDS:
        if name not in obj:
            raise TxError("missing-field", f"tx.{name}: missing", name)
    if len(obj) != len(TX_FIELDS):
        extra = sorted(k for k in obj if k not in TX_FIELDS)
        name = str(extra[0])
        raise TxError(
            "unknown-field",
            f"tx.{name}: unknown field (a transaction has exactly {', '.join(TX_FIELDS)})",
            name,
        )
    _check_chain_id(obj["chain_id"])
    _check_type(obj["type"])
    _check_body(obj["body"])
    _check_signer(obj["signer"])
    _check_nonce(obj["nonce"])
    _check_sig(obj["sig"])
    return obj


# ------------------------------------------------------------------ Tx
# Keys sort as body, chain_id, nonce, sig, signer, type: in the wire bytes the
# signature sits just before the top-level "signer", whose tail has a fixed
# shape ("signer":"<64 hex>","type":"<ascii>"}). The wire bytes are the signing
# bytes with '"sig":"<hex>",' spliced in there; tests check this against a
# full encoding.
_SIGNER_TAG: Final = b'"signer":"'


def _splice_sig(signing: bytes, type_: str, sig_hex: str) -> bytes:
    cut = len(signing) - (len(_SIGNER_TAG) + 64 + len('","type":"') + len(type_) + len('"}'))
    if signing[cut : cut + len(_SIGNER_TAG)] != _SIGNER_TAG:  # pragma: no cover - invariant
        raise AssertionError("tx: signing bytes do not end with signer and type")
    return b"".join((signing[:cut], b'"sig":"', sig_hex.encode("ascii"), b'",', signing[cut:]))


@dataclass(frozen=True, slots=True, eq=False)
class Tx:
    """A decoded, well-formed transaction (signature not yet checked: see
    ``verify_signature``). Treat ``obj`` as read-only."""

    obj: dict[str, Any]
    wire: bytes
    signing_bytes: bytes
    hash_bytes: bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tx) and other.wire == self.wire

    def __hash__(self) -> int:
        return hash(self.wire)

    def __repr__(self) -> str:
        return f"Tx({self.type} {self.hash[:16]}... nonce={self.nonce})"

    @property
    def hash(self) -> str:
        return self.hash_bytes.hex()

    @property
    def chain_id(self) -> str:
        return str(self.obj["chain_id"])

    @property
    def type(self) -> str:
        return str(self.obj["type"])

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.obj["body"]
        return body

    @property
    def signer(self) -> str:
        return str(self.obj["signer"])

    @property
    def signer_bytes(self) -> bytes:
        return bytes.fromhex(self.obj["signer"])

    @property
    def nonce(self) -> int:
        return int(self.obj["nonce"])

    @property
    def sig(self) -> str:
        return str(self.obj["sig"])

    @property
    def sig_bytes(self) -> bytes:
        return bytes.fromhex(self.obj["sig"])

    def verify_item(self) -> tuple[bytes, bytes, bytes]:
        """``(public key, signing bytes, signature)`` for ``node.core.keys.verify_batch``."""
        return (self.signer_bytes, self.signing_bytes, self.sig_bytes)

    def verify_signature(self) -> bool:
        return verify(self.signer_bytes, self.signing_bytes, self.sig_bytes)

    def check_signature(self) -> None:
        """``TxError("bad-signature")`` unless the signature verifies."""
        if not self.verify_signature():
            raise TxError("bad-signature", f"tx {self.hash}: signature does not verify", "sig")

    def to_json_obj(self) -> dict[str, Any]:
        """A fresh copy of the transaction as a JSON object."""
        copy: dict[str, Any] = json.loads(self.wire)
        return copy


def _make(obj: dict[str, Any]) -> Tx:
    """``obj`` is key-checked and canonical-encodable."""
    unsigned = {k: obj[k] for k in ("body", "chain_id", "nonce", "signer", "type")}
    signing = canonical_json_unchecked(unsigned)
    wire = _splice_sig(signing, obj["type"], obj["sig"])
    return Tx(obj, wire, signing, hashlib.sha256(signing).digest())


def _check_chain(tx: Tx, chain_id: str | None) -> Tx:
    if chain_id is not None and tx.chain_id != chain_id:
        raise TxError(
            "wrong-chain",
            f"tx.chain_id: {tx.chain_id!r} is not this chain ({chain_id!r})",
            "chain_id",
        )
    return tx


def _codec_error(e: CodecError) -> TxError:
    if e.path is None or e.path == "<root>":
        return TxError("malformed", f"transaction is not acceptable JSON: {e}")
    field = re.split(r"[.\[]", e.path, maxsplit=1)[0]
    return TxError("malformed", f"tx.{e}", field)


def decode_tx(
    wire: bytes,
    *,
    chain_id: str | None,
    max_bytes: int = MAX_TX_BYTES,
    max_depth: int = MAX_TX_DEPTH,
) -> Tx:
    """Parse and validate a transaction from JSON bytes (any layout).

    ``chain_id`` (None: any) must match. The signature is *not* checked: call
    ``Tx.verify_signature`` or batch many with ``node.core.keys.verify_batch``.
    ``tx.wire`` is the canonical form, which may differ from ``wire``.
    """
    if len(wire) > max_bytes:
        raise TxError("too-large", f"transaction is {len(wire)} bytes, the limit is {max_bytes}")
    try:
        # +1: the transaction object itself is one level above its body
        obj = parse_json(wire, max_bytes, max_depth + 1)
    except CodecError as e:
        raise _codec_error(e) from None
    return _check_chain(_make(_check_keys(obj)), chain_id)


def tx_from_json_obj(
    obj: Any,
    *,
    chain_id: str | None = None,
    max_bytes: int = MAX_TX_BYTES,
    max_depth: int = MAX_TX_DEPTH,
) -> Tx:
    """Validate an already-parsed JSON object (e.g. from a proof) as a transaction."""
    _check_keys(obj)
    try:
        checked = canonical_json(obj, max_depth=max_depth + 1)
    except CodecError as e:
        raise _codec_error(e) from None
    # decode the checked bytes: a private copy (the caller's object may change later)
    tx = _make(json.loads(checked))
    if len(tx.wire) > max_bytes:
        raise TxError("too-large", f"transaction is {len(tx.wire)} bytes, the limit is {max_bytes}")
    return _check_chain(tx, chain_id)


def build_tx(
    chain_id: str,
    type: str,
    body: Mapping[str, Any],
    signing_key: nacl.signing.SigningKey,
    nonce: int,
) -> Tx:
    """Build and sign a transaction; ``TxError`` names any bad field."""
    unsigned: dict[str, Any] = {
        "body": dict(body),
        "chain_id": _check_chain_id(chain_id),
        "nonce": _check_nonce(nonce),
        "signer": bytes(signing_key.verify_key).hex(),
        "type": _check_type(type),
    }
    try:
        signing = canonical_json(unsigned, max_depth=MAX_TX_DEPTH + 1)
    except CodecError as e:
        raise TxError("bad-field", f"tx.{e}", "body") from None
    sig_hex = sign(signing_key, signing).hex()
    obj = {**unsigned, "sig": sig_hex}
    wire = _splice_sig(signing, type, sig_hex)
    if len(wire) > MAX_TX_BYTES:
        raise TxError("too-large", f"transaction is {len(wire)} bytes, the limit is {MAX_TX_BYTES}")
    return Tx(obj, wire, signing, hashlib.sha256(signing).digest())


# ------------------------------------------------------------------ cache + payload rules
class TxCache:
    """Bounded LRU of decoded transactions by wire bytes, remembering which
    have a verified signature. Thread-safe (the mempool may fill it from a
    verification thread).

    An entry only saves work between a transaction's admission and its
    commit (gossip, proposal, block), so the cache needs to hold about a full
    mempool and the blocks in flight, not history. It is bounded both by
    entries and by an estimate of the memory the entries hold
    (``entry_cost``: the wire bytes, the signing bytes and the decoded object),
    so that large transactions cannot make it grow past ``max_bytes``. A
    smaller cache also keeps the garbage collector's full passes short.
    """

    def __init__(self, max_entries: int = 32_768, max_bytes: int = 96 << 20) -> None:
        if max_entries < 1:
            raise ValueError("TxCache: max_entries must be >= 1")
        if max_bytes < 1:
            raise ValueError("TxCache: max_bytes must be >= 1")
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[bytes, tuple[Tx, bool]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def entry_cost(wire: bytes) -> int:
        """Estimated bytes one entry holds: wire and signing bytes, decoded JSON, overhead."""
        return 3 * len(wire) + 1024

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cost_bytes(self) -> int:
        return self._bytes

    def get(self, wire: bytes) -> tuple[Tx, bool] | None:
        with self._lock:
            entry = self._entries.get(wire)
            if entry is not None:
                self._entries.move_to_end(wire)
            return entry

    def add(self, tx: Tx, *, verified: bool) -> None:
        """Remember ``tx`` (by its canonical wire bytes); ``verified`` never downgrades."""
        with self._lock:
            old = self._entries.get(tx.wire)
            if old is None:
                self._bytes += self.entry_cost(tx.wire)
            self._entries[tx.wire] = (tx, verified or (old is not None and old[1]))
            self._entries.move_to_end(tx.wire)
            while len(self._entries) > 1 and (
                len(self._entries) > self._max or self._bytes > self._max_bytes
            ):
                wire, _ = self._entries.popitem(last=False)
                self._bytes -= self.entry_cost(wire)


class TxPayloadRules:
    """``consensus.crypto.PayloadRules`` for Hygeia transactions.

    - ``request_id``: the 32-byte transaction hash (``sha256(request)`` for
      bytes that are not a transaction: such a request never passes
      ``payload_valid``);
    - ``payload_root``: ``consensus.merkle.merkle_root`` over the 32-byte hashes;
    - ``payload_valid``: every item is the canonical wire form of a well-formed
      transaction of this chain with a valid signature, no hash twice.

    Give the mempool the same ``cache`` (or call ``remember_verified``) so a
    transaction it verified is not verified again when proposed.
    """

    def __init__(
        self,
        chain_id: str,
        *,
        cache: TxCache | None = None,
        max_tx_bytes: int = MAX_TX_BYTES,
        executor: Executor | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.cache = cache if cache is not None else TxCache()
        self._max_tx_bytes = max_tx_bytes
        self._executor = executor

    def remember_verified(self, tx: Tx) -> None:
        self.cache.add(tx, verified=True)

    def decode(self, request: bytes) -> Tx | None:
        """The transaction of ``request`` through the cache; None if it is not one."""
        entry = self.cache.get(request)
        if entry is not None:
            return entry[0]
        try:
            tx = decode_tx(request, chain_id=None, max_bytes=self._max_tx_bytes)
        except TxError:
            return None
        if tx.wire == request:  # only canonical bytes are cached under their own key
            self.cache.add(tx, verified=False)
        return tx

    def request_id(self, request: bytes) -> bytes:
        tx = self.decode(request)
        return tx.hash_bytes if tx is not None else hashlib.sha256(request).digest()

    def payload_root(self, payload: tuple[bytes, ...]) -> bytes:
        return merkle_root([self.request_id(r) for r in payload])

    def payload_valid(self, payload: tuple[bytes, ...]) -> bool:
        seen: dict[bytes, None] = {}
        unverified: list[Tx] = []
        for item in payload:
            entry = self.cache.get(item)
            if entry is None:
                tx = self.decode(item)
                if tx is None:
                    return False
                verified = False
            else:
                tx, verified = entry
            if tx.wire != item or tx.chain_id != self.chain_id or tx.hash_bytes in seen:
                return False
            seen[tx.hash_bytes] = None
            if not verified:
                unverified.append(tx)
        if not unverified:
            return True
        results = verify_batch([t.verify_item() for t in unverified], executor=self._executor)
        if not all(results):
            return False
        for t in unverified:
            self.cache.add(t, verified=True)
        return True
