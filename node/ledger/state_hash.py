"""The state commitment: one hash of the whole app state, kept up to date per block.

What it is for: the state root (``node/ledger/state.py``) chains every block's
write set, which proves the *history*; a node that receives the state of height
c in a snapshot (state sync, ``node/statesync/``) has no history to replay. So
the root also covers a hash of the state's *content*, and a snapshot is checked
against the certified root of its checkpoint by hashing what it holds.

The hash is LtHash16 (Bellare–Micciancio's lattice-based incremental hash, as
Facebook's "Securing update propagation with homomorphic hashing", 2019):

    item(k, v) = SHAKE-256("hygeia/state-item/v1" || len(k) (4 bytes) || k
                           || len(v) (4 bytes) || v), 2048 bytes,
                 read as 1024 little-endian 16-bit lanes
    L(S)       = the lane-wise sum, mod 2^16, of item(k, v) over every (k, v) in S

except the key ``STATE_HASH_KEY`` itself, where L is kept. Being a sum, it is
updated per block in the work of the block's writes (subtract the old item of
each written key, add the new one), it does not depend on the order items are
added, and the sum of the L's of disjoint parts is the L of the whole: a
snapshot's chunks are checked one by one against their share, and the shares
against the whole. Finding two states with one L is as hard as a lattice
problem of dimension 1024 (~200-bit security at 16-bit lanes).

numpy does the lane arithmetic (a vector add in C instead of 1024 Python adds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

import numpy as np
import numpy.typing as npt

from node.core.codec import canonical_json, parse_json

__all__ = [
    "EMPTY",
    "LANES",
    "STATE_HASH_BYTES",
    "STATE_HASH_KEY",
    "StateHash",
    "item_hash",
]

LANES: Final = 1024
STATE_HASH_BYTES: Final = 2 * LANES
ITEM_TAG: Final = b"hygeia/state-item/v1"
# where the state keeps its own L (hex, as canonical JSON); not itself an item of L
STATE_HASH_KEY: Final = b"meta/state-hash"

Lanes = npt.NDArray[np.uint16]


def item_hash(key: bytes, value: bytes) -> bytes:
    """The 2048-byte item of one state entry."""
    return hashlib.shake_256(
        ITEM_TAG + len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value
    ).digest(STATE_HASH_BYTES)


def _lanes(items: list[bytes]) -> Lanes:
    """The lane-wise sum of items (2048 bytes each), mod 2^16."""
    if not items:
        return np.zeros(LANES, dtype=np.uint16)
    stacked = np.frombuffer(b"".join(items), dtype="<u2").reshape(len(items), LANES)
    total: Lanes = stacked.sum(axis=0, dtype=np.uint64).astype(np.uint16)
    return total


class StateHash:
    """An L value: immutable, added and subtracted lane-wise mod 2^16."""

    __slots__ = ("_lanes",)

    def __init__(self, lanes: Lanes) -> None:
        self._lanes = lanes

    @staticmethod
    def of(entries: Iterable[tuple[bytes, bytes]]) -> StateHash:
        """L of a set of (key, value) entries (``STATE_HASH_KEY`` skipped)."""
        return StateHash(_lanes([item_hash(k, v) for k, v in entries if k != STATE_HASH_KEY]))

    @staticmethod
    def from_bytes(raw: bytes) -> StateHash:
        if len(raw) != STATE_HASH_BYTES:
            raise ValueError(f"a state hash is {STATE_HASH_BYTES} bytes, not {len(raw)}")
        return StateHash(np.frombuffer(raw, dtype="<u2").copy())

    @staticmethod
    def from_state_value(raw: bytes | None) -> StateHash:
        """L as the state stores it under ``STATE_HASH_KEY`` (absent: the empty state's)."""
        if raw is None:
            return EMPTY
        text = parse_json(raw)
        if not isinstance(text, str):
            raise ValueError("meta/state-hash is not a hex string")
        return StateHash.from_bytes(bytes.fromhex(text))

    def to_state_value(self) -> bytes:
        return canonical_json(self.to_bytes().hex())

    def to_bytes(self) -> bytes:
        return self._lanes.astype("<u2").tobytes()

    def digest(self) -> bytes:
        """SHA-256 of the 2048 bytes: what the state root covers."""
        return hashlib.sha256(self.to_bytes()).digest()

    def updated(self, changes: Iterable[tuple[bytes, bytes | None, bytes | None]]) -> StateHash:
        """L after ``changes``: (key, old value or None, new value or None) each."""
        added: list[bytes] = []
        removed: list[bytes] = []
        for key, old, new in changes:
            if key == STATE_HASH_KEY or old == new:
                continue
            if old is not None:
                removed.append(item_hash(key, old))
            if new is not None:
                added.append(item_hash(key, new))
        return StateHash(self._lanes + _lanes(added) - _lanes(removed))

    def __add__(self, other: StateHash) -> StateHash:
        return StateHash(self._lanes + other._lanes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateHash) and bool(np.array_equal(self._lanes, other._lanes))

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"StateHash({self.digest().hex()[:16]}...)"


EMPTY: Final = StateHash(np.zeros(LANES, dtype=np.uint16))
