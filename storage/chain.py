"""``ChainStore``: the node's committed chain, indexes, app state and consensus
records in one LevelDB database.

Each committed block is one synced write batch holding the block, its hash
index, its tx index, its app-state writes, its consensus record writes and the
new tip, so a ``kill -9`` at any instant leaves the old or the new state, never
a mix. ``persist_consensus`` is a synced batch too: when it returns, the
records survive a crash, so the votes they justify may be sent. Semantics are
those of ``storage.base``; reads are ``storage.reader.LevelReader``.

After a failed write the database refuses every write (``storage.db``) until
``reopen`` closes it and opens it again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from storage.base import ChainView, Write
from storage.db import Database, WriteOp, open_database
from storage.errors import StorageError
from storage.layout import (
    META_BASE,
    META_HEIGHT,
    META_RESTORING,
    Namespace,
    decode_u64,
    encode_location,
    encode_u64,
)
from storage.reader import LevelReader
from storage.validate import check_block, check_next_height, check_writes


class ChainStore(LevelReader):
    """``ChainStorage`` on a ``Database``; ``close()`` closes the database."""

    __slots__ = ("_db", "_genesis", "_write_lock")

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._db = db
        self._genesis: bytes | None = None  # what reopen checks the database against
        self._write_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        genesis_hash: bytes | None = None,
    ) -> ChainStore:
        """Open the database in ``path`` (``storage.db.open_database``) and wrap it."""
        return cls(open_database(path, create=create, genesis_hash=genesis_hash))

    @property
    def database(self) -> Database:
        return self._db

    def reopen(self) -> None:
        """Close the database and open it again (``storage.db.open_database``, with
        every check of an open): the one way to write again after a failed write.

        Nothing else may read or write this store during the call (the caller
        makes sure of it: a read in another thread would race the close). What is
        read afterwards is what LevelDB recovered: every write that returned, and
        perhaps the one that failed, whole or not at all. If opening fails (the
        ``StorageError`` is raised), the store stays closed, reads and writes
        raise ``StorageError``, until a later ``reopen`` succeeds.
        """
        with self._write_lock:
            old = self._db
            if not old.closed:
                self._genesis = old.genesis_hash
                old.close()
            db = open_database(old.path, genesis_hash=self._genesis)
            self._db = db
            self._kv = db

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
        hashes = check_block(block_hash, block_bytes, tx_hashes)
        state = check_writes(state_writes, "state_writes")
        records = check_writes(consensus_writes, "consensus_writes")
        proofs = check_writes(proof_writes, "proof_writes")
        with self._write_lock:
            check_next_height(height, self.tip_height())
            ops = self._block_ops(height, block_hash, block_bytes, hashes, state)
            ops.extend((Namespace.CONSENSUS, k, v) for k, v in records)
            ops.extend((Namespace.PROOFS, k, v) for k, v in proofs)
            ops.append((Namespace.META, META_HEIGHT, encode_u64(height)))
            self._db.write(ops, sync=True)

    def _block_ops(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        hashes: Sequence[bytes],
        state: Sequence[Write],
    ) -> list[WriteOp]:
        """The writes of block ``height``: the block, its hash index, its tx index (a tx
        hash already indexed keeps its first location) and its state writes; the
        caller adds the tip and holds the write lock."""
        key = encode_u64(height)
        ops: list[WriteOp] = [
            (Namespace.BLOCKS, key, block_bytes),
            (Namespace.BLOCK_HASHES, block_hash, key),
        ]
        seen: set[bytes] = set()
        for index, tx_hash in enumerate(hashes):
            if tx_hash in seen or self.tx_location(tx_hash) is not None:
                continue  # first location wins
            seen.add(tx_hash)
            ops.append((Namespace.TXS, tx_hash, encode_location(height, index)))
        ops.extend((Namespace.STATE, k, v) for k, v in state)
        return ops

    # ------------------------------------------------------------ restore (state sync)
    def restoring_height(self) -> int | None:
        """The snapshot height a state sync is writing, or None."""
        raw = self._db.get(Namespace.META, META_RESTORING)
        return None if raw is None else decode_u64(raw, "meta/restoring")

    def write_restored_state(self, height: int, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Write one verified chunk of the snapshot of ``height`` into an empty chain
        (tip 0). The state is not used until ``finish_restore`` sets the tip."""
        checked = check_writes(entries, "entries")
        with self._write_lock:
            if self.tip_height() != 0:
                raise StorageError("a snapshot is restored into an empty chain only")
            restoring = self.restoring_height()
            if restoring not in (None, height):
                raise StorageError(f"a restore of height {restoring} is under way, not {height}")
            ops: list[WriteOp] = [(Namespace.STATE, k, v) for k, v in checked]
            ops.append((Namespace.META, META_RESTORING, encode_u64(height)))
            self._db.write(ops, sync=False)

    def finish_restore(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        tx_hashes: Sequence[bytes],
        state_writes: Sequence[Write],
    ) -> None:
        """Make the restored state the chain's: block ``height`` (the snapshot's) is
        the tip and the base, in one synced batch."""
        hashes = check_block(block_hash, block_bytes, tx_hashes)
        state = check_writes(state_writes, "state_writes")
        with self._write_lock:
            if self.tip_height() != 0 or self.restoring_height() != height:
                raise StorageError(f"no restore of height {height} to finish")
            ops = self._block_ops(height, block_hash, block_bytes, hashes, state)
            key = encode_u64(height)
            ops.append((Namespace.META, META_BASE, key))
            ops.append((Namespace.META, META_HEIGHT, key))
            ops.append((Namespace.META, META_RESTORING, None))
            self._db.write(ops, sync=True)

    def discard_restore(self) -> int:
        """Delete the unverified state of a restore that did not finish (a crash or a
        forged snapshot); returns how many entries. Refused once the tip is set."""
        with self._write_lock:
            if self.tip_height() != 0:
                raise StorageError("the chain has blocks: nothing restored to discard")
            keys = [k for k, _ in self._db.iterate(Namespace.STATE)]
            ops: list[WriteOp] = [(Namespace.STATE, k, None) for k in keys]
            ops.append((Namespace.META, META_RESTORING, None))
            self._db.write(ops, sync=True)
            return len(keys)

    def persist_consensus(self, records: Iterable[Write]) -> None:
        checked = check_writes(records, "records")
        if not checked:
            return
        with self._write_lock:
            self._db.write([(Namespace.CONSENSUS, k, v) for k, v in checked], sync=True)

    def put_proof_records(self, records: Iterable[Write]) -> None:
        checked = check_writes(records, "records")
        if not checked:
            return
        with self._write_lock:
            self._db.write([(Namespace.PROOFS, k, v) for k, v in checked], sync=True)

    @contextmanager
    def snapshot(self) -> Iterator[ChainView]:
        """A consistent read view (a LevelDB snapshot), released on exit."""
        with self._db.snapshot() as snap:
            yield LevelReader(snap)

    def approximate_size(self) -> int:
        return self._db.approximate_size()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
