"""The chain store interface, satisfied by the LevelDB and the in-memory store.

``ChainView`` is the read side (also what a snapshot gives); ``ChainStorage``
adds the writes. The daemon uses ``storage.chain.ChainStore`` (LevelDB), the
simulator and tests ``storage.memory.MemoryChainStore``; both keep the same
semantics:

- heights start at 1; ``tip_height()`` is 0 before the first block;
- ``commit_block`` is all-or-nothing: the block, its hash index, its tx index,
  its app-state writes, its consensus record writes and the new tip land
  together (one synced batch on disk), and only at height ``tip + 1``;
- a tx hash already indexed keeps its first location (a later block that
  repeats it, e.g. a replay the ledger rejected, does not move the index);
- a write value of ``None`` deletes the key; within one call the last write to
  a key wins;
- every argument is checked before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

Write = tuple[bytes, bytes | None]
"""(key, value) upsert; a value of None deletes the key."""


class ChainView(Protocol):
    """Reads of the committed chain, its indexes, app state and consensus records."""

    def tip_height(self) -> int:
        """Height of the last committed block; 0 when there is none."""
        ...

    def base_height(self) -> int:
        """0, or for a database restored from a snapshot (state sync) the snapshot's
        height: its first stored block; the blocks below it are not here."""
        ...

    def block_by_height(self, height: int) -> bytes | None: ...

    def height_of_block(self, block_hash: bytes) -> int | None: ...

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction."""
        ...

    def state_get(self, key: bytes) -> bytes | None: ...

    def state_iter(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """App-state (key, value) pairs whose key starts with ``prefix``, sorted by key."""
        ...

    def consensus_record(self, key: bytes) -> bytes | None:
        """One persisted consensus record, or None."""
        ...

    def consensus_records(self) -> dict[bytes, bytes]:
        """Every persisted consensus record, in key order."""
        ...

    def proof_record(self, key: bytes) -> bytes | None:
        """One record kept for proofs of outcome (``storage/layout.py``), or None."""
        ...


class ChainStorage(ChainView, Protocol):
    """A chain store: ``ChainView`` plus atomic, durable writes."""

    def commit_block(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        tx_hashes: Sequence[bytes],
        state_writes: Sequence[Write],
        consensus_writes: Sequence[Write] = (),
        proof_writes: Sequence[Write] = (),
    ) -> None:
        """Commit block ``height`` (must be tip + 1) with everything that belongs to it."""
        ...

    def persist_consensus(self, records: Iterable[Write]) -> None:
        """Durably upsert/delete consensus records (before the votes they justify are sent)."""
        ...

    def put_proof_records(self, records: Iterable[Write]) -> None:
        """Upsert records kept for proofs of outcome (an archived checkpoint certificate)."""
        ...

    def snapshot(self) -> AbstractContextManager[ChainView]:
        """A consistent read view: later writes are invisible in it."""
        ...

    def approximate_size(self) -> int:
        """Approximate bytes used (on disk for LevelDB), for metrics."""
        ...

    def close(self) -> None: ...
