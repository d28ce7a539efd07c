"""A joining node's state sync: find the newest snapshot, fetch it, check it, restore it.

What it is for: a node started with ``sync.state_sync`` on an empty database
(``hygeia init --join``) does not replay the chain from genesis. ``StateSync.run``:

1. **discovering**: asks every linked peer for its newest complete snapshot
   (``GetSnapshotFrame``), again every ``ASK_MS`` while it has none to offer (a
   peer that offered is not asked again: a manifest of many chunks is large, and
   on a slow link a new copy would queue before the chunks), and checks each
   manifest it gets
   against genesis alone (``verify_manifest``: epoch links, a quorum's checkpoint
   signatures over the state root, block c's certificate, the chunks' shares).
   A peer whose manifest fails is penalised and not asked again. Once a valid
   offer is in, it waits ``GATHER_MS`` for more (or until ``parallel`` peers
   offered), takes the highest height, and as sources every peer that offered
   that very manifest.
2. **fetching**: asks the sources for chunks, a few in flight each
   (``ChunkPlan``), checks each chunk (``verify_chunk``) in the verify pool and
   writes it in the database thread (``ChainStore.write_restored_state``). A
   peer that sends a bad chunk is penalised and dropped as a source; if no
   source is left, the unfinished restore is discarded and discovery starts over.
3. **restored**: block c becomes the tip and the base of the chain with the
   state hash (``ChainStore.finish_restore``, one synced batch); the node then
   block-syncs from c + 1 as any node that was behind.

Nothing is written before the manifest it belongs to passed, and no chunk before
it passed; the state is not the chain's (tip 0) until every chunk is in. A crash
during a restore leaves ``meta/restoring``: the next run discards that state
first. ``status()`` is what ``/status`` shows under ``state_sync``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final

import structlog

from node.ledger.state_hash import STATE_HASH_KEY, StateHash
from node.net.penalties import FORGERY_POINTS
from node.net.wire import GetChunkFrame, GetSnapshotFrame, encode_frame
from node.statesync.manifest import (
    SnapshotError,
    VerifiedSnapshot,
    decode_manifest,
    verify_chunk,
    verify_manifest,
)
from node.statesync.plan import ChunkPlan
from storage.chain import ChainStore

__all__ = ["ASK_MS", "GATHER_MS", "StateSync"]

ASK_MS: Final = 10_000  # how often a peer without an offer is asked again
GATHER_MS: Final = 3_000  # after the first valid offer, how long to wait for more
POLL_S: Final = 0.25

log = structlog.get_logger("hygeia.statesync")


@dataclass(frozen=True)
class _Inbound:
    kind: str  # "manifest" | "chunk" | "gone"
    peer: bytes
    height: int = 0
    index: int = 0
    data: bytes = b""


class StateSync:
    """One joining node's state sync (see the module docstring)."""

    def __init__(
        self,
        *,
        chain_id: str,
        genesis_keys: Sequence[bytes],
        payload_root: Callable[[tuple[bytes, ...]], bytes],
        max_chunk_bytes: int,
        store: ChainStore,
        send: Callable[[bytes, bytes], bool],
        connected: Callable[[], list[bytes]],
        penalise: Callable[[bytes, str, int], None],
        verify_exec: Executor,
        db_exec: Executor,
        clock: Callable[[], int],
        parallel: int = 3,
    ) -> None:
        self._chain_id = chain_id
        self._genesis_keys = list(genesis_keys)
        self._payload_root = payload_root
        self._max_chunk = max_chunk_bytes
        self._store = store
        self._send = send
        self._connected = connected
        self._penalise = penalise
        self._verify_exec = verify_exec
        self._db_exec = db_exec
        self._clock = clock
        self._parallel = parallel
        self._inbox: asyncio.Queue[_Inbound] = asyncio.Queue(maxsize=1024)
        self._refused: set[bytes] = set()
        self._asked_chunks: set[bytes] = set()  # every peer asked for a chunk
        self.phase = "discovering"
        self.height: int | None = None
        self.error: str | None = None
        self._plan: ChunkPlan | None = None
        self._offers = 0
        self._manifest_queued: set[bytes] = set()  # peers whose manifest awaits a look

    # ------------------------------------------------------------ inputs
    def _put(self, item: _Inbound) -> None:
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:  # a flooding peer: its frames are dropped
            self._penalise(item.peer, "state sync: more frames than asked for", 1)

    def on_manifest(self, peer: bytes, data: bytes) -> None:
        """A peer's manifest: queued only while discovering, and one per peer at a time
        (a manifest can be large: a flood of them must not pile up in memory)."""
        if self.phase not in ("discovering", "failed") or peer in self._manifest_queued:
            return
        self._manifest_queued.add(peer)
        self._put(_Inbound("manifest", peer, data=data))

    def on_chunk(self, peer: bytes, height: int, index: int, data: bytes) -> None:
        """A chunk: queued only if it is one this node asked ``peer`` for and awaits
        (anything else, e.g. a late answer after a restore, is dropped at once)."""
        plan = self._plan
        if self.phase != "fetching" or height != self.height or plan is None:
            return
        if not plan.expects(peer, index):
            return
        self._put(_Inbound("chunk", peer, height, index, data))

    def on_peer_down(self, peer: bytes) -> None:
        if self.phase != "restored":
            self._put(_Inbound("gone", peer))

    @property
    def chunk_sources(self) -> frozenset[bytes]:
        """Every peer this node asked for a chunk."""
        return frozenset(self._asked_chunks)

    @property
    def refused(self) -> frozenset[bytes]:
        """The peers whose manifest or chunk failed its check (not asked again)."""
        return frozenset(self._refused)

    def status(self) -> dict[str, Any]:
        done, total = self._plan.progress() if self._plan is not None else (0, 0)
        return {
            "phase": self.phase,
            "height": self.height,
            "chunks_done": done,
            "chunks_total": total,
            "peers": len(self._plan.sources) if self._plan is not None else self._offers,
            "error": self.error,
        }

    async def _next(self) -> _Inbound | None:
        try:
            item = await asyncio.wait_for(self._inbox.get(), POLL_S)
        except TimeoutError:
            return None
        if item.kind == "manifest":
            self._manifest_queued.discard(item.peer)
        return item

    def _refuse(self, peer: bytes, why: str) -> None:
        self._refused.add(peer)
        self._penalise(peer, f"state sync: {why}", FORGERY_POINTS)
        log.warning("snapshot refused", peer=peer.hex()[:16], reason=why)

    # ------------------------------------------------------------ the run
    async def run(self) -> VerifiedSnapshot:
        """Until a snapshot is restored; returns it."""
        loop = asyncio.get_running_loop()
        if self._store.restoring_height() is not None:
            dropped = await loop.run_in_executor(self._db_exec, self._store.discard_restore)
            log.warning("unfinished state sync discarded", entries=dropped)
        while True:
            snapshot, sources = await self._discover()
            if await self._fetch(snapshot, sources):
                await self._finish(snapshot)
                return snapshot
            # "failed" (and why) stays shown until the next fetch starts
            self.phase, self.error = "failed", "every source of the snapshot failed; starting over"
            log.warning("state sync failed", height=snapshot.height, reason=self.error)
            await loop.run_in_executor(self._db_exec, self._store.discard_restore)
            self._plan = None

    async def _verify(self, data: bytes) -> VerifiedSnapshot:
        def check() -> VerifiedSnapshot:
            return verify_manifest(
                decode_manifest(data),
                self._chain_id,
                self._genesis_keys,
                max_chunk_bytes=self._max_chunk,
                payload_root=self._payload_root,
            )

        return await asyncio.get_running_loop().run_in_executor(self._verify_exec, check)

    async def _discover(self) -> tuple[VerifiedSnapshot, list[bytes]]:
        offers: dict[bytes, bytes] = {}  # peer -> manifest digest
        checked: dict[bytes, VerifiedSnapshot | None] = {}  # digest -> verified (None: bad)
        asked: dict[bytes, int] = {}  # peer -> when last asked
        first_offer: int | None = None
        ask = encode_frame(GetSnapshotFrame())
        while True:
            now = self._clock()
            for peer in self._connected():
                if peer in self._refused or peer in offers:
                    continue  # a manifest can be large: never ask a peer that offered
                if peer not in asked or now - asked[peer] >= ASK_MS:
                    self._send(peer, ask)
                    asked[peer] = now
            item = await self._next()
            if item is not None and item.kind == "manifest" and item.peer not in self._refused:
                if item.data:
                    digest = hashlib.sha256(item.data).digest()
                    if digest not in checked:
                        try:
                            checked[digest] = await self._verify(item.data)
                        except SnapshotError as exc:
                            checked[digest] = None
                            self.error = str(exc)
                    if checked[digest] is None:
                        self._refuse(item.peer, f"forged or broken manifest ({self.error})")
                    else:
                        offers[item.peer] = digest
                        self._offers = len(offers)
                        first_offer = now if first_offer is None else first_offer
            elif item is not None and item.kind == "gone":
                offers.pop(item.peer, None)
            if first_offer is None or not offers:
                continue
            if len(offers) >= self._parallel or now - first_offer >= GATHER_MS:
                best = max(
                    (s for d in set(offers.values()) if (s := checked[d]) is not None),
                    key=lambda s: s.height,
                )
                digest = next(d for d in offers.values() if checked[d] is best)
                sources = sorted(p for p, d in offers.items() if d == digest)
                return best, sources

    async def _fetch(self, snapshot: VerifiedSnapshot, sources: list[bytes]) -> bool:
        loop = asyncio.get_running_loop()
        height = snapshot.height
        self.phase, self.height, self.error = "fetching", height, None
        plan = ChunkPlan(len(snapshot.manifest.chunks), list(sources))
        self._plan = plan
        log.info("state sync fetching", height=height, chunks=plan.total, sources=len(sources))
        while not plan.finished:
            if plan.failed:
                return False
            for peer, index in plan.requests(self._clock()):
                self._asked_chunks.add(peer)
                if not self._send(peer, encode_frame(GetChunkFrame(height, index))):
                    plan.on_gone(peer)
            item = await self._next()
            if item is None:
                continue
            if item.kind == "gone":
                plan.on_gone(item.peer)
                continue
            if item.kind != "chunk" or item.height != height:
                continue
            if not plan.expects(item.peer, item.index):
                continue  # late (reassigned) or unasked: not blamed, not used
            if not item.data:
                plan.on_gone(item.peer)  # it no longer has that snapshot
                continue
            try:
                entries = await loop.run_in_executor(
                    self._verify_exec, verify_chunk, snapshot, item.index, item.data
                )
            except SnapshotError as exc:
                self._refuse(item.peer, str(exc))
                plan.on_bad(item.peer)
                continue
            await loop.run_in_executor(
                self._db_exec, self._store.write_restored_state, height, entries
            )
            plan.on_good(item.peer, item.index)
        return True

    async def _finish(self, snapshot: VerifiedSnapshot) -> None:
        block = snapshot.block
        hash_value = StateHash.from_bytes(snapshot.manifest.state_hash).to_state_value()

        def finish() -> None:
            self._store.finish_restore(
                snapshot.height,
                bytes.fromhex(block.hash),
                block.to_bytes(),
                list(block.tx_hashes),
                [(STATE_HASH_KEY, hash_value)],
            )

        await asyncio.get_running_loop().run_in_executor(self._db_exec, finish)
        self.phase = "restored"
        log.info("state sync restored", height=snapshot.height, epoch=snapshot.epoch.number)
