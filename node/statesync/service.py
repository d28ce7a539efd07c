"""The serving side of state sync: take snapshots at checkpoints, sign them off once
the checkpoint is stable, answer peers' requests.

What it is for: the daemon calls ``on_block`` after each committed block and
``tick`` after each block and every few seconds; peers' ``GetSnapshotFrame`` and
``GetChunkFrame`` go to ``serve_manifest`` and ``serve_chunk``.

- **Taking**: at every height that is a multiple of ``every`` (``snapshot_interval``
  checkpoints), a validator opens a LevelDB snapshot at once (``on_block`` runs
  before the next block is applied, so it sees exactly the state of that height)
  and writes it out in the snapshot thread: chunks and the pending manifest
  (``SnapshotStore.write_pending``). The state is read from the LevelDB snapshot,
  so block commits go on meanwhile.
- **Signing off**: the replica persists its stable checkpoint with its quorum of
  signatures (``consensus.records.StableRecord``, one record per epoch, replaced
  as checkpoints advance). ``tick`` looks at it: when it is the pending
  snapshot's height, the signatures and the epoch links to that height's set
  (``links_through``; if a link lacks its attestations yet, later) complete the
  snapshot; when the stable height has passed it, the snapshot can no longer be
  signed off and is dropped. Then the retention policy runs (``prune``).
- **Serving**: the newest complete manifest, and chunks by (height, index), read in
  the snapshot thread; at most ``MAX_SERVING`` reads per peer at once, more are
  ignored (an honest fetcher keeps two in flight).

A non-validator has no replica, so no stable checkpoint record: it takes no
snapshots (docs/state-sync.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Final

import structlog

from consensus.epochs import EpochSchedule
from consensus.records import KEY_STABLE, decode_stable
from node.core.block import Block
from node.core.codec import canonical_json
from node.engine.epoch_switch import scoped
from node.ledger.domains.epoch_attest import NotAttested, links_through
from node.ledger.executor import BlockOutcome
from node.ledger.state import BlockState, writes_digest
from node.ledger.state_hash import STATE_HASH_KEY, StateHash
from node.net.wire import ChunkFrame, SnapshotFrame, encode_frame
from node.statesync.manifest import MANIFEST_FORMAT, CheckpointSig, Manifest, cut_chunks
from node.statesync.store import SnapshotStore
from storage.chain import ChainStore

__all__ = ["MAX_SERVING", "SnapshotService"]

MAX_SERVING: Final = 2  # chunk reads in progress for one peer

log = structlog.get_logger("hygeia.statesync")


class SnapshotService:
    """Snapshots of one node (see the module docstring)."""

    def __init__(
        self,
        *,
        chain_id: str,
        store: ChainStore,
        snapshots: SnapshotStore,
        every: int,
        chunk_bytes: int,
        executor: Executor,
        send: Callable[[bytes, bytes], bool],
        schedule: Callable[[], EpochSchedule],
        genesis_root: bytes,
    ) -> None:
        self._chain_id = chain_id
        self._store = store
        self.snapshots = snapshots
        self._every = every
        self._chunk_bytes = chunk_bytes
        self._exec = executor
        self._send = send
        self._schedule = schedule
        self._genesis_root = genesis_root
        self._pending: set[int] = set(snapshots.pending_heights())
        self._writing: set[int] = set()
        self._serving: dict[bytes, int] = {}
        self._futures: set[Future[None]] = set()

    def _submit(self, what: str, fn: Callable[[], None]) -> None:
        future = self._exec.submit(fn)
        self._futures.add(future)

        def done(f: Future[None]) -> None:
            self._futures.discard(f)
            exc = f.exception()
            if exc is not None:
                log.error("snapshot work failed", work=what, error=repr(exc))

        future.add_done_callback(done)

    # ------------------------------------------------------------ taking
    def on_block(self, block: Block, outcome: BlockOutcome, is_validator: bool) -> None:
        height = block.height
        if self._every <= 0 or height % self._every or not is_validator:
            return
        if height in self._writing or height in self._pending:
            return
        stack = contextlib.ExitStack()
        view = stack.enter_context(self._store.snapshot())
        raw_hash = view.state_get(STATE_HASH_KEY)
        prev_raw = self._store.block_by_height(height - 1) if height > 1 else None
        prev_root = (
            bytes.fromhex(Block.from_bytes(prev_raw).header.state_root)
            if prev_raw is not None
            else self._genesis_root
        )
        base = Manifest(
            format=MANIFEST_FORMAT,
            chain_id=self._chain_id,
            height=height,
            block=block.to_bytes(),
            prev_state_root=prev_root,
            writes_digest=writes_digest(outcome.writes),
            state_hash=StateHash.from_state_value(raw_hash).to_bytes(),
            epoch=0,
            checkpoint=[],
            epochs=b"[]",
            chunks=[],
        )
        self._writing.add(height)

        def write() -> None:
            try:
                manifest = self.snapshots.write_pending(
                    base, cut_chunks(view.state_iter(b""), self._chunk_bytes)
                )
            finally:
                stack.close()
                self._writing.discard(height)
            self._pending.add(height)
            log.info("snapshot taken", height=height, chunks=len(manifest.chunks))

        self._submit("take", write)

    # ------------------------------------------------------------ signing off
    def tick(self) -> None:
        """Complete (or drop) the pending snapshots whose checkpoint is decided."""
        for height in sorted(self._pending):
            epoch = self._schedule().at(height)
            raw = self._store.consensus_record(scoped(epoch.number, KEY_STABLE))
            if raw is None:
                continue
            stable = decode_stable(raw)
            if stable.height < height:
                continue
            if stable.height > height:
                self._pending.discard(height)
                self._submit("drop", functools.partial(self.snapshots.discard, height))
                log.info("snapshot dropped: its checkpoint became stable unseen", height=height)
                continue
            try:
                links = links_through(BlockState(self._store), height)
            except NotAttested:
                continue  # the attestations are on their way
            sigs = [CheckpointSig(c.sender, c.sig) for c in stable.proof]
            self._pending.discard(height)
            self._submit(
                "complete",
                functools.partial(
                    self._complete, height, epoch.number, sigs, canonical_json(links)
                ),
            )

    def _complete(
        self, height: int, epoch: int, sigs: list[CheckpointSig], epochs_json: bytes
    ) -> None:
        self.snapshots.complete(height, epoch, sigs, epochs_json)
        dropped = self.snapshots.prune()
        log.info("snapshot complete", height=height, epoch=epoch, pruned=dropped)

    # ------------------------------------------------------------ serving
    def _serve(self, peer: bytes, read: Callable[[], bytes]) -> None:
        if self._serving.get(peer, 0) >= MAX_SERVING:
            return
        self._serving[peer] = self._serving.get(peer, 0) + 1
        loop = asyncio.get_running_loop()

        def done(f: asyncio.Future[bytes]) -> None:
            left = self._serving.get(peer, 1) - 1
            if left:
                self._serving[peer] = left
            else:
                self._serving.pop(peer, None)
            if not f.cancelled() and f.exception() is None:
                self._send(peer, f.result())

        loop.run_in_executor(self._exec, read).add_done_callback(done)

    def serve_manifest(self, peer: bytes) -> None:
        def read() -> bytes:
            return encode_frame(SnapshotFrame(self.snapshots.newest_manifest() or b""))

        self._serve(peer, read)

    def serve_chunk(self, peer: bytes, height: int, index: int) -> None:
        def read() -> bytes:
            data = self.snapshots.chunk(height, index) or b""
            return encode_frame(ChunkFrame(height, index, data))

        self._serve(peer, read)

    def forget(self, peer: bytes) -> None:
        self._serving.pop(peer, None)
