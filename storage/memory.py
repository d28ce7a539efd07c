"""``MemoryChainStore``: the chain store in plain dicts, for the simulator and tests.

Same interface and semantics as the LevelDB ``ChainStore`` (``storage.base``):
heights start at 1 and must be committed in order, ``commit_block`` checks
every argument before changing anything and then applies it all at once, the
first location of a tx hash wins, ``None`` deletes, reads iterate in key order,
and ``snapshot()`` is a view unaffected by later writes. Nothing is durable:
what "survives a crash" is whatever the owner keeps a reference to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from storage.base import ChainView, Write
from storage.errors import StorageError
from storage.validate import check_block, check_next_height, check_writes


class _MemoryView:
    """``ChainView`` over dicts; the store mutates its own, a snapshot holds copies."""

    def __init__(self) -> None:
        self._blocks: dict[int, bytes] = {}
        self._hashes: dict[bytes, int] = {}
        self._txs: dict[bytes, tuple[int, int]] = {}
        self._state: dict[bytes, bytes] = {}
        self._consensus: dict[bytes, bytes] = {}
        self._proofs: dict[bytes, bytes] = {}
        self._tip = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("memory chain store is closed")

    def tip_height(self) -> int:
        self._check_open()
        return self._tip

    def base_height(self) -> int:
        self._check_open()
        return 0  # never restored from a snapshot

    def block_by_height(self, height: int) -> bytes | None:
        self._check_open()
        return self._blocks.get(height)

    def height_of_block(self, block_hash: bytes) -> int | None:
        self._check_open()
        return self._hashes.get(block_hash)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        self._check_open()
        return self._txs.get(tx_hash)

    def state_get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._state.get(key)

    def state_iter(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        items = sorted((k, v) for k, v in self._state.items() if k.startswith(prefix))
        return iter(items)

    def consensus_record(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._consensus.get(key)

    def consensus_records(self) -> dict[bytes, bytes]:
        self._check_open()
        return dict(sorted(self._consensus.items()))

    def proof_record(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._proofs.get(key)


def _apply(target: dict[bytes, bytes], writes: Iterable[Write]) -> None:
    for key, value in writes:
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


class MemoryChainStore(_MemoryView):
    """``ChainStorage`` in memory."""

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
        self._check_open()
        hashes = check_block(block_hash, block_bytes, tx_hashes)
        state = check_writes(state_writes, "state_writes")
        records = check_writes(consensus_writes, "consensus_writes")
        proofs = check_writes(proof_writes, "proof_writes")
        check_next_height(height, self._tip)
        # Everything is checked: from here on nothing can fail half-way.
        self._blocks[height] = block_bytes
        self._hashes[block_hash] = height
        for index, tx_hash in enumerate(hashes):
            self._txs.setdefault(tx_hash, (height, index))
        _apply(self._state, state)
        _apply(self._consensus, records)
        _apply(self._proofs, proofs)
        self._tip = height

    def persist_consensus(self, records: Iterable[Write]) -> None:
        self._check_open()
        _apply(self._consensus, check_writes(records, "records"))

    def put_proof_records(self, records: Iterable[Write]) -> None:
        self._check_open()
        _apply(self._proofs, check_writes(records, "records"))

    @contextmanager
    def snapshot(self) -> Iterator[ChainView]:
        """A copy of the current contents, closed on exit."""
        self._check_open()
        view = _MemoryView()
        view._blocks = dict(self._blocks)
        view._hashes = dict(self._hashes)
        view._txs = dict(self._txs)
        view._state = dict(self._state)
        view._consensus = dict(self._consensus)
        view._proofs = dict(self._proofs)
        view._tip = self._tip
        try:
            yield view
        finally:
            view._closed = True

    def approximate_size(self) -> int:
        """Bytes of keys and values held (a rough stand-in for disk usage)."""
        self._check_open()
        size = sum(8 + len(block) for block in self._blocks.values())
        size += sum(len(h) + 8 for h in self._hashes)
        size += sum(len(h) + 12 for h in self._txs)
        size += sum(len(k) + len(v) for k, v in self._state.items())
        size += sum(len(k) + len(v) for k, v in self._consensus.items())
        return size

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
