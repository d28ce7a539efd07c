"""The state root's formula: what each block adds to the chain of state roots.

``chain_state_root`` is computed by the ledger after every block
(``node/ledger/executor.py``), signed in checkpoints by the validators, checked
by state sync against a snapshot (``node/statesync/manifest.py``) and by a proof
of outcome against a certified checkpoint (``node/core/outcome_proof.py``): one
definition for all of them, in the core so the offline verifier needs no ledger.
A block's results root is the Merkle tree (RFC 6962) of its transactions'
results, one leaf per transaction in block order (``result_leaf``: the bytes the
state keeps for the result, so the leaf costs no second encoding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from consensus.merkle import merkle_root

__all__ = ["BlockDigests", "chain_state_root", "result_leaf", "results_root"]


def chain_state_root(prev_root: bytes, height: int, digests: BlockDigests) -> bytes:
    """root(h) = SHA-256("hygeia/state/v3" || root(h-1) || height (8 bytes big-endian)
    || writes_digest(writes of h) || content digest of the state after h
    || results root of h).

    The first two parts chain every block's write set (the history); the content
    digest is SHA-256 of the state's LtHash (``node/ledger/state_hash.py``), so
    the root of a height also commits to the whole state at that height: a
    snapshot is checked against it without the history (``node/statesync/``).
    The results root (``node/ledger/outcomes.py``) is a Merkle tree of the
    block's transaction results, so a proof can show one result against a
    checkpoint's certified root with a path and a few digests per block, not the
    block's whole write set (``node/core/outcome_proof.py``). Nodes that
    executed differently disagree on all three."""
    return hashlib.sha256(
        b"hygeia/state/v3"
        + prev_root
        + height.to_bytes(8, "big")
        + digests.writes
        + digests.content
        + digests.results
    ).digest()


@dataclass(frozen=True)
class BlockDigests:
    """What block h adds to the state root chain: its write set's digest, the
    content digest of the state after it and its results root (32 bytes each).
    Stored per block (96 bytes) so proofs of outcome can chain a result's block
    to the next stable checkpoint."""

    writes: bytes
    content: bytes
    results: bytes

    SIZE: ClassVar[int] = 96

    def __post_init__(self) -> None:
        if not (len(self.writes) == len(self.content) == len(self.results) == 32):
            raise ValueError("block digests are 32 bytes each")

    def to_bytes(self) -> bytes:
        return self.writes + self.content + self.results

    @classmethod
    def from_bytes(cls, raw: bytes) -> BlockDigests:
        if len(raw) != cls.SIZE:
            raise ValueError(f"block digests: {len(raw)} bytes, {cls.SIZE} expected")
        return cls(raw[:32], raw[32:64], raw[64:])

    def to_json(self) -> dict[str, str]:
        return {
            "writes_digest": self.writes.hex(),
            "content_digest": self.content.hex(),
            "results_root": self.results.hex(),
        }


def result_leaf(tx_hash: str, record: bytes) -> bytes:
    """The results tree's leaf of one transaction: its hash (64 hex), a colon, and the
    canonical JSON of its result record (``{"status", "code", "message", "data",
    "height", "index"}``: the bytes the state keeps under ``txr/<hash>``)."""
    return tx_hash.encode() + b":" + record


def results_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle root of a block's leaves (SHA-256 of nothing for an empty block)."""
    return merkle_root(leaves)
