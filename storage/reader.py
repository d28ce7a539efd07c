"""The chain getters over a key-value source: the live database or a snapshot.

``LevelReader`` implements ``ChainView`` by decoding the layout of
``storage.layout``; it holds no state of its own, so the same code serves
``ChainStore`` (live reads) and ``ChainStore.snapshot()`` (a consistent view).
"""

from __future__ import annotations

from collections.abc import Iterator

from storage.db import KeyValueReader
from storage.layout import (
    MAX_U64,
    META_BASE,
    META_HEIGHT,
    Namespace,
    decode_location,
    decode_u64,
    encode_u64,
)


class LevelReader:
    """``ChainView`` over a ``KeyValueReader``."""

    __slots__ = ("_kv",)

    def __init__(self, kv: KeyValueReader) -> None:
        self._kv = kv

    def tip_height(self) -> int:
        raw = self._kv.get(Namespace.META, META_HEIGHT)
        return 0 if raw is None else decode_u64(raw, "tip height (meta/height)")

    def base_height(self) -> int:
        raw = self._kv.get(Namespace.META, META_BASE)
        return 0 if raw is None else decode_u64(raw, "base height (meta/base)")

    def block_by_height(self, height: int) -> bytes | None:
        if not 1 <= height <= MAX_U64:
            return None
        return self._kv.get(Namespace.BLOCKS, encode_u64(height))

    def height_of_block(self, block_hash: bytes) -> int | None:
        raw = self._kv.get(Namespace.BLOCK_HASHES, block_hash)
        return None if raw is None else decode_u64(raw, "block hash index entry")

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._kv.get(Namespace.TXS, tx_hash)
        return None if raw is None else decode_location(raw)

    def state_get(self, key: bytes) -> bytes | None:
        return self._kv.get(Namespace.STATE, key)

    def state_iter(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._kv.iterate(Namespace.STATE, prefix)

    def consensus_record(self, key: bytes) -> bytes | None:
        return self._kv.get(Namespace.CONSENSUS, key)

    def consensus_records(self) -> dict[bytes, bytes]:
        return dict(self._kv.iterate(Namespace.CONSENSUS))

    def proof_record(self, key: bytes) -> bytes | None:
        return self._kv.get(Namespace.PROOFS, key)
