"""The serving side of state sync: take snapshots at checkpoints, sign them off once
the checkpoint is stable, answer peers' requests.

What it is for: the daemon calls ``on_block`` after each committed block and
``tick`` after each block and every few seconds; peers' ``GetSnapshotFrame`` and
``GetChunkFrame`` go to ``serve_manifest`` and ``serve_chunk``.

- **Taking**: at every height that is a multiple of ``every`` (``snapshot_interval``
  checkpoints), a node opens a LevelDB snapshot at once (``on_block`` runs
  before the next block is applied, so it sees exactly the state of that height)
  and writes it out in the snapshot thread: chunks and the pending manifest
  (``SnapshotStore.write_pending``). The state is read from the LevelDB snapshot,
  so block commits go on meanwhile.
- **Signing off**: a validator's replica persists its stable checkpoint with its
  quorum of signatures (``consensus.records.StableRecord``, one record per epoch,
  replaced as checkpoints advance). ``tick`` looks at it as soon as a snapshot
  is being taken: when it is the snapshot's height, the signatures are kept;
  when the stable height has passed it, the snapshot can no longer be signed
  off and is dropped. A node without a replica (an observer, or a validator not
  in that epoch) asks its peers instead (``GetStableFrame``); a validator
  answers with its record if it is of that height (``serve_stable``), and the
  answer is checked (a quorum of the epoch's signatures over the state root
  this node computed itself) before it is kept; a forged one is penalised. With
  the signatures and the epoch links to that height's set (``links_through``;
  if a link lacks its attestations yet, later) the snapshot is complete. Then
  the retention policy runs (``prune``); an observer also keeps at most
  ``keep`` pending snapshots.
- **Serving**: the newest complete manifest, chunks by (height, index) and stable
  checkpoints by height, read in the snapshot thread; at most ``MAX_SERVING``
  reads per peer at once, more are ignored (an honest fetcher keeps two in
  flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final

import msgspec
import structlog

from consensus.config import ConsensusConfig
from consensus.epochs import EpochSchedule
from consensus.messages import Checkpoint, canonical
from consensus.quorum import CertificateError, verify_checkpoint_proof
from consensus.records import KEY_STABLE, StableRecord, decode_stable
from node.core.block import Block
from node.core.codec import canonical_json
from node.core.keys import ValidatorVerifier
from node.engine.epoch_switch import scoped
from node.engine.proof_archive import stable_key
from node.ledger.domains.epoch_attest import NotAttested, links_through
from node.ledger.executor import BlockOutcome
from node.ledger.state import BlockState
from node.net.penalties import FORGERY_POINTS
from node.net.wire import ChunkFrame, GetStableFrame, SnapshotFrame, StableFrame, encode_frame
from node.statesync.manifest import (
    CheckpointSig,
    cut_chunks,
    decode_manifest,
    pending_manifest,
)
from node.statesync.store import SnapshotStore
from storage.chain import ChainStore

__all__ = ["MAX_SERVING", "SnapshotService"]

MAX_SERVING: Final = 2  # chunk reads in progress for one peer
ASK_MS: Final = 2_000  # a non-validator asks its peers for a checkpoint this often

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
        connected: Callable[[], list[bytes]],
        penalise: Callable[[bytes, str, int], None],
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
        self._connected = connected
        self._penalise = penalise
        self._schedule = schedule
        self._genesis_root = genesis_root
        self._pending: set[int] = set(snapshots.pending_heights())
        self._writing: set[int] = set()
        # height -> (epoch, the quorum's checkpoint signatures), once known
        self._proofs: dict[int, tuple[int, list[CheckpointSig]]] = {}
        self._asked: dict[int, int] = {}  # height -> when peers were last asked (ms)
        self._serving: dict[bytes, int] = {}

    def _submit(self, what: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the snapshot thread; its errors are logged."""

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                log.error("snapshot work failed", work=what, error=repr(f.exception()))

        asyncio.get_running_loop().run_in_executor(self._exec, fn).add_done_callback(done)

    # ------------------------------------------------------------ taking
    def on_block(self, block: Block, outcome: BlockOutcome) -> None:
        height = block.height
        if self._every <= 0 or height % self._every:
            return
        if self._writing or height in self._pending:
            return  # one snapshot at a time: a node catching up skips heights
        stack = contextlib.ExitStack()
        view = stack.enter_context(self._store.snapshot())
        base = pending_manifest(view, self._chain_id, block, outcome.digests, self._genesis_root)
        self._writing.add(height)

        def write() -> int:
            try:
                manifest = self.snapshots.write_pending(
                    base, cut_chunks(view.state_iter(b""), self._chunk_bytes)
                )
            finally:
                stack.close()
            return len(manifest.chunks)

        def written(f: asyncio.Future[int]) -> None:  # in the event loop
            self._writing.discard(height)
            if f.cancelled() or f.exception() is not None:
                log.error("snapshot not taken", height=height, error=repr(f.exception()))
                return
            self._pending.add(height)
            log.info("snapshot taken", height=height, chunks=f.result())

        asyncio.get_running_loop().run_in_executor(self._exec, write).add_done_callback(written)

    # ------------------------------------------------------------ signing off
    def tick(self, now_ms: int) -> None:
        """Find the checkpoint signatures of the snapshots being taken or pending (this
        validator's own stable checkpoint, or a validator's answer), complete what has
        them and its epoch links, drop what can no longer be signed off."""
        for height in sorted(self._writing | self._pending):
            if height not in self._proofs:
                self._find_proof(height, now_ms)
            if height not in self._pending or height not in self._proofs:
                continue
            try:
                links = links_through(BlockState(self._store), height)
            except NotAttested:
                continue  # the attestations are on their way
            epoch, sigs = self._proofs.pop(height)
            self._pending.discard(height)
            self._asked.pop(height, None)
            work = functools.partial(self._complete, height, epoch, sigs, canonical_json(links))
            self._submit("complete", work)
        # an observer never learns that a checkpoint passed unseen: keep the newest few
        for height in sorted(self._pending)[: max(0, len(self._pending) - self.snapshots.keep)]:
            self._drop(height, "more pending snapshots than are kept")

    def _drop(self, height: int, why: str) -> None:
        self._pending.discard(height)
        self._proofs.pop(height, None)
        self._asked.pop(height, None)
        self._submit("drop", functools.partial(self.snapshots.discard, height))
        log.info("snapshot dropped", height=height, reason=why)

    def _stable(self, height: int) -> StableRecord | None:
        """This node's stable checkpoint record of the epoch of ``height`` (a validator)."""
        epoch = self._schedule().at(height)
        raw = self._store.consensus_record(scoped(epoch.number, KEY_STABLE))
        return decode_stable(raw) if raw is not None else None

    def _find_proof(self, height: int, now_ms: int) -> None:
        stable = self._stable(height)
        if stable is not None and stable.height == height:
            epoch = self._schedule().at(height).number
            self._proofs[height] = (epoch, [CheckpointSig(c.sender, c.sig) for c in stable.proof])
        elif stable is not None and stable.height > height:
            if height in self._pending:
                self._drop(height, "its checkpoint became stable unseen")
        elif now_ms - self._asked.get(height, -ASK_MS) >= ASK_MS:
            self._asked[height] = now_ms  # not a validator (or not yet stable): ask them
            ask = encode_frame(GetStableFrame(height))
            for peer in self._connected():
                self._send(peer, ask)

    def on_stable(self, peer: bytes, data: bytes) -> None:
        """A peer's stable checkpoint record, asked for by ``_find_proof``."""
        if not data:
            return
        try:
            stable = decode_stable(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._penalise(peer, "state sync: malformed stable checkpoint", FORGERY_POINTS)
            return
        height = stable.height
        if height not in self._asked or height in self._proofs:
            return  # not asked for, or answered already
        raw = self._store.block_by_height(height)
        if raw is None:
            return
        root = bytes.fromhex(Block.from_bytes(raw).header.state_root)
        epoch = self._schedule().at(height)
        config = ConsensusConfig(chain_id=self._chain_id, n=epoch.n, epoch=epoch.number)
        try:
            if stable.state_root != root:
                raise CertificateError(f"a stable root other than ours at {height}")
            verifier = ValidatorVerifier(list(epoch.validators))
            verify_checkpoint_proof(config, verifier, height, root, stable.proof)
        except CertificateError as exc:
            self._penalise(peer, f"state sync: {exc}", FORGERY_POINTS)
            return
        sigs = [CheckpointSig(c.sender, c.sig) for c in stable.proof]
        self._proofs[height] = (epoch.number, sigs)
        # checked: kept for proofs of outcome too (an observer has no replica to copy)
        self._submit(
            "archive",
            functools.partial(self._store.put_proof_records, [(stable_key(height), data)]),
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

    def serve_stable(self, peer: bytes, height: int) -> None:
        """The stable checkpoint of ``height`` if this node knows it (else empty): its
        replica's record, the signatures it keeps for a snapshot it is taking, or
        those of a complete snapshot of that height (so a record the replica has
        replaced since is still served)."""

        def read() -> bytes:  # reads the store and maybe a manifest: in the snapshot thread
            stable = self._stable(height)
            if stable is None or stable.height != height:
                stable = self._kept_stable(height)
            return encode_frame(StableFrame(canonical(stable) if stable is not None else b""))

        self._serve(peer, read)

    def _kept_stable(self, height: int) -> StableRecord | None:
        sigs: list[CheckpointSig] | None = None
        if (kept := self._proofs.get(height)) is not None:
            sigs = kept[1]
        elif (data := self.snapshots.manifest(height)) is not None:
            sigs = decode_manifest(data).checkpoint
        raw = self._store.block_by_height(height) if sigs is not None else None
        if sigs is None or raw is None:
            return None
        root = bytes.fromhex(Block.from_bytes(raw).header.state_root)
        proof = tuple(Checkpoint(height, root, s.validator, s.sig) for s in sigs)
        return StableRecord(height, root, proof)

    def forget(self, peer: bytes) -> None:
        self._serving.pop(peer, None)
