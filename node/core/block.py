"""Blocks: the header, its hash, and how a committed consensus proposal becomes a block.

Consensus certifies one *proposal* per height (``consensus.messages.Proposal``:
chain id, height, timestamp, proposer, payload root). The block header adds
what is only known after commit (docs/blocks.md, see
``docs/blocks.md``)::

    chain_id     str   from the proposal
    height       int   from the proposal (1 is the first block)
    view         int   view of the commit certificate this node holds
    parent_hash  hex   hash of the header at height-1; 64 zeros at height 1
    tx_root      hex   RFC 6962 Merkle root over the 32-byte tx hashes (= payload_root)
    state_root   hex   app-state root after executing this block
    timestamp    int   proposer's clock, ms since the Unix epoch, from the proposal
    proposer     int   validator index of the proposer, from the proposal

Block hash = lower-case hex SHA-256 of the canonical JSON of the header
*without* ``view``. Two honest nodes can hold commit certificates of
different views for the same proposal (one saw the commit quorum before a view
change, the other after it re-proposed the same proposal), so the view is a
property of the certificate, not of the block: hashing it would fork the
parent-hash chain. The view is kept in the header for operators and checked
against the certificate.

A ``Block`` is the header, the transactions (canonical wire bytes), their
hashes and the commit certificate (``consensus.messages.Commit`` votes). It
encodes to deterministic msgpack for storage and to JSON for
``GET /v1/blocks/{height}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from consensus.merkle import merkle_root
from consensus.messages import Commit, CommittedBlock, Proposal
from node.core.codec import INT64_MAX, canonical_json_unchecked
from node.core.hexstr import HEX64, HEX128
from node.core.tx import TxError, decode_tx, tx_from_json_obj

__all__ = [
    "BLOCK_RECORD_VERSION",
    "GENESIS_PARENT_HASH",
    "Block",
    "BlockError",
    "BlockHeader",
    "certificate_from_json",
    "certificate_to_json",
    "derive_block",
]

GENESIS_PARENT_HASH: Final = "0" * 64
BLOCK_RECORD_VERSION: Final = 1
HEADER_FIELDS: Final = (
    "chain_id",
    "height",
    "parent_hash",
    "proposer",
    "state_root",
    "timestamp",
    "tx_root",
    "view",
)


class BlockError(ValueError):
    """A block, stored record or block JSON that is inconsistent or malformed."""


def _hex32(value: str | bytes, what: str) -> str:
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise BlockError(f"{what}: must be 32 bytes, got {len(value)}")
        return bytes(value).hex()
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise BlockError(f"{what}: must be 64 lower-case hex digits, got {value!r}")
    return value


def _uint(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT64_MAX:
        raise BlockError(f"{what}: must be an integer in {low}..{INT64_MAX}, got {value!r}")
    return value


class BlockHeader(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    chain_id: str
    height: int
    view: int
    parent_hash: str
    tx_root: str
    state_root: str
    timestamp: int
    proposer: int

    def validate(self) -> BlockHeader:
        if not isinstance(self.chain_id, str) or not self.chain_id:
            raise BlockError(f"header.chain_id: must be a non-empty string, got {self.chain_id!r}")
        _uint(self.height, "header.height", 1)
        _uint(self.view, "header.view")
        _hex32(self.parent_hash, "header.parent_hash")
        _hex32(self.tx_root, "header.tx_root")
        _hex32(self.state_root, "header.state_root")
        _uint(self.timestamp, "header.timestamp")
        _uint(self.proposer, "header.proposer")
        return self

    def hashed_json(self) -> dict[str, Any]:
        """The fields the block hash covers (all but ``view``)."""
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "parent_hash": self.parent_hash,
            "proposer": self.proposer,
            "state_root": self.state_root,
            "timestamp": self.timestamp,
            "tx_root": self.tx_root,
        }

    def canonical_bytes(self) -> bytes:
        """Canonical JSON of ``hashed_json()``: what the block hash is the SHA-256 of."""
        return canonical_json_unchecked(self.hashed_json())

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**self.hashed_json(), "view": self.view}

    @classmethod
    def from_json(cls, obj: Any) -> BlockHeader:
        if not isinstance(obj, dict):
            raise BlockError("header: must be a JSON object")
        missing = [k for k in HEADER_FIELDS if k not in obj]
        if missing:
            raise BlockError(f"header.{missing[0]}: missing")
        extra = sorted(k for k in obj if k not in HEADER_FIELDS)
        if extra:
            raise BlockError(f"header.{extra[0]}: unknown field")
        return cls(**{k: obj[k] for k in HEADER_FIELDS}).validate()

    def proposal(self) -> Proposal:
        """The consensus proposal this header extends (what the certificate signs)."""
        return Proposal(
            self.chain_id, self.height, self.timestamp, self.proposer, bytes.fromhex(self.tx_root)
        )


# ------------------------------------------------------------------ certificates
def certificate_to_json(certificate: Sequence[Commit]) -> list[dict[str, Any]]:
    """``[{"validator", "view", "sig"}]``; height and digest follow from the proposal."""
    return [{"validator": c.sender, "view": c.view, "sig": c.sig.hex()} for c in certificate]


def certificate_from_json(obj: Any, proposal: Proposal) -> tuple[Commit, ...]:
    """Rebuild the COMMIT votes of a certificate for ``proposal``."""
    if not isinstance(obj, list):
        raise BlockError("certificate: must be a list")
    digest = proposal.digest()
    out: list[Commit] = []
    for i, entry in enumerate(obj):
        what = f"certificate[{i}]"
        if not isinstance(entry, dict) or sorted(entry) != ["sig", "validator", "view"]:
            raise BlockError(f"{what}: must be an object with validator, view and sig")
        sig = entry["sig"]
        if not isinstance(sig, str) or not HEX128.fullmatch(sig):
            raise BlockError(f"{what}.sig: must be 128 lower-case hex digits")
        out.append(
            Commit(
                view=_uint(entry["view"], f"{what}.view"),
                height=proposal.height,
                digest=digest,
                sender=_uint(entry["validator"], f"{what}.validator"),
                sig=bytes.fromhex(sig),
            )
        )
    return tuple(out)


# ------------------------------------------------------------------ blocks
class _BlockRecord(msgspec.Struct, frozen=True, array_like=True):
    version: int
    header: BlockHeader
    txs: tuple[bytes, ...]
    tx_hashes: tuple[bytes, ...]
    certificate: tuple[Commit, ...]


_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(_BlockRecord)


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[bytes, ...]
    tx_hashes: tuple[bytes, ...]
    certificate: tuple[Commit, ...]
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.txs) != len(self.tx_hashes):
            raise BlockError(
                f"block {self.header.height}: {len(self.txs)} txs but {len(self.tx_hashes)} hashes"
            )
        root = merkle_root(self.tx_hashes).hex()
        if root != self.header.tx_root:
            raise BlockError(
                f"block {self.header.height}: tx hashes have Merkle root {root}, "
                f"header says {self.header.tx_root}"
            )
        object.__setattr__(self, "hash", self.header.hash())

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def proposal(self) -> Proposal:
        return self.header.proposal()

    def committed(self) -> CommittedBlock:
        """The consensus form, e.g. to feed ``Replica.on_committed_block`` during sync."""
        return CommittedBlock(self.proposal, self.txs, self.certificate)

    def tx_index(self, tx_hash: bytes) -> int | None:
        try:
            return self.tx_hashes.index(tx_hash)
        except ValueError:
            return None

    # storage: deterministic msgpack
    def to_bytes(self) -> bytes:
        return _encoder.encode(
            _BlockRecord(
                BLOCK_RECORD_VERSION, self.header, self.txs, self.tx_hashes, self.certificate
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Block:
        """Decode a stored block; ``BlockError`` if it is corrupt or of another version."""
        try:
            rec = _record_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise BlockError(f"stored block is corrupt: {e}") from None
        if rec.version != BLOCK_RECORD_VERSION:
            raise BlockError(
                f"stored block has record version {rec.version}, "
                f"this node reads {BLOCK_RECORD_VERSION}"
            )
        rec.header.validate()
        if any(len(h) != 32 for h in rec.tx_hashes):
            raise BlockError(f"stored block {rec.header.height}: a tx hash is not 32 bytes")
        return cls(rec.header, rec.txs, rec.tx_hashes, rec.certificate)

    # API: JSON
    def to_json(self) -> dict[str, Any]:
        """``GET /v1/blocks/{height}``: hash, header, txs (JSON objects), tx hashes, certificate."""
        return {
            "hash": self.hash,
            "header": self.header.to_json(),
            "txs": [json.loads(t) for t in self.txs],
            "tx_hashes": [h.hex() for h in self.tx_hashes],
            "certificate": certificate_to_json(self.certificate),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Block:
        """Rebuild a block from ``to_json`` output, checking hashes and the tx root
        (not the certificate's signatures: see ``node.core.proof`` for that)."""
        if not isinstance(obj, dict):
            raise BlockError("block: must be a JSON object")
        for k in ("hash", "header", "txs", "tx_hashes", "certificate"):
            if k not in obj:
                raise BlockError(f"block.{k}: missing")
        header = BlockHeader.from_json(obj["header"])
        if not isinstance(obj["txs"], list) or not isinstance(obj["tx_hashes"], list):
            raise BlockError("block.txs and block.tx_hashes must be lists")
        wires: list[bytes] = []
        hashes: list[bytes] = []
        for i, t in enumerate(obj["txs"]):
            try:
                tx = tx_from_json_obj(t, chain_id=header.chain_id)
            except TxError as e:
                raise BlockError(f"block.txs[{i}]: {e}") from None
            wires.append(tx.wire)
            hashes.append(tx.hash_bytes)
        if [h.hex() for h in hashes] != obj["tx_hashes"]:
            raise BlockError("block.tx_hashes: do not match the transactions")
        block = cls(
            header,
            tuple(wires),
            tuple(hashes),
            certificate_from_json(obj["certificate"], header.proposal()),
        )
        if block.hash != obj["hash"]:
            raise BlockError(f"block.hash: {obj['hash']!r} is not the header's hash {block.hash}")
        return block


def _hash_of(chain_id: str) -> Callable[[bytes], bytes]:
    def tx_hash(wire: bytes) -> bytes:
        try:
            return decode_tx(wire, chain_id=chain_id).hash_bytes
        except TxError as e:
            raise BlockError(f"committed payload holds an invalid transaction: {e}") from None

    return tx_hash


def derive_block(
    committed: CommittedBlock,
    parent_hash: str | bytes,
    state_root: str | bytes,
    view: int | None = None,
    *,
    tx_hash: Callable[[bytes], bytes] | None = None,
) -> Block:
    """The block of a committed proposal, after executing it.

    ``parent_hash`` is the previous block's hash (``GENESIS_PARENT_HASH`` at
    height 1), ``state_root`` the app-state root after executing this block.
    ``view`` defaults to the certificate's view and must match it. ``tx_hash``
    maps a payload item to its 32-byte hash (pass ``TxPayloadRules.request_id``
    to reuse its cache); by default each item is decoded.
    """
    p = committed.proposal
    cert = tuple(sorted(committed.certificate, key=lambda c: c.sender))
    cert_views = sorted({c.view for c in cert})
    if len(cert_views) > 1:
        raise BlockError(f"block {p.height}: certificate mixes views {cert_views}")
    if view is None:
        if not cert_views:
            raise BlockError(f"block {p.height}: empty certificate and no view given")
        view = cert_views[0]
    elif cert_views and cert_views != [view]:
        raise BlockError(f"block {p.height}: view {view} but the certificate is of {cert_views}")
    hasher = tx_hash or _hash_of(p.chain_id)
    hashes = tuple(hasher(item) for item in committed.payload)
    header = BlockHeader(
        chain_id=p.chain_id,
        height=p.height,
        view=view,
        parent_hash=_hex32(parent_hash, "parent_hash"),
        tx_root=_hex32(p.payload_root, "proposal.payload_root"),
        state_root=_hex32(state_root, "state_root"),
        timestamp=p.timestamp,
        proposer=p.proposer,
    ).validate()
    return Block(header, tuple(committed.payload), hashes, cert)
