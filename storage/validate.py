"""Argument checks shared by both chain stores, done before anything is written.

Each check returns plain lists (so a lazy or misbehaving sequence is consumed
once, up front) and raises ``TypeError``/``ValueError`` for a caller bug or
``StorageError`` for a height that is not the next one. Nothing here touches
storage, so a failure leaves the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.base import Write
from storage.errors import StorageError
from storage.layout import MAX_U32, MAX_U64


def _check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


def check_writes(writes: Iterable[Write], what: str) -> list[Write]:
    checked: list[Write] = []
    for i, pair in enumerate(writes):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"{what}[{i}] must be a (key, value) tuple")
        key, value = pair
        _check_bytes(key, f"{what}[{i}] key")
        if value is not None:
            _check_bytes(value, f"{what}[{i}] value")
        checked.append((key, value))
    return checked


def check_next_height(height: object, tip: int) -> int:
    if not isinstance(height, int) or isinstance(height, bool):
        raise TypeError(f"height must be an int, not {type(height).__name__}")
    if height != tip + 1:
        raise StorageError(f"cannot commit block at height {height}: the tip is {tip}")
    if height > MAX_U64:
        raise ValueError(f"height {height} does not fit in 64 bits")
    return height


def check_block(
    block_hash: object, block_bytes: object, tx_hashes: Iterable[object]
) -> list[bytes]:
    """Check the block's own arguments; return the tx hashes as a list."""
    _check_bytes(block_hash, "block_hash")
    if not block_hash:
        raise ValueError("block_hash must not be empty")
    _check_bytes(block_bytes, "block_bytes")
    hashes = [_check_bytes(h, f"tx_hashes[{i}]") for i, h in enumerate(tx_hashes)]
    if len(hashes) > MAX_U32 + 1:
        raise ValueError(f"a block cannot index {len(hashes)} transactions")
    return hashes
