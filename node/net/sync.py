"""Block sync: a node that is behind fetches certified blocks from its peers.

Peers announce their committed height (``StatusFrame``) on connect and every
second. The node is *behind* when a peer is well ahead (more than
``lag_threshold`` heights), when its own height has not moved for
``stall_ms`` while a peer is ahead, or when the replica asks (``NeedSync``).
It then splits the missing range into chunks and fetches them from several
peers at once (at most ``parallel`` requests in flight, each chunk from a
peer that has it, re-assigned to another peer after ``request_timeout_ms``).
Every block's commit certificate is checked against the validator set before
it is used; a peer that sends a bad block is penalised. Blocks are handed to
the consensus driver strictly in height order; the replica checks the
certificate again and delivers them, so a syncing node joins consensus as
soon as it has caught up. Time is passed in (``now_ms``).

Each block's certificate is checked against the validator set of the block's
own epoch (``certifier``, consensus/epochs.py). A block above the node's
horizon (its set may change before that height, if a change commits in the
blocks below) is kept unchecked and checked when the blocks below it are
executed, before it is handed on; a bad one then penalises the peer that sent
it.

A status claim is not evidence (issue 11): any allowed peer can claim height
2^62. Sync fetches towards the best claim it has (``target``, never above what
some connected peer claims), but the node counts as *syncing* (``/health``,
the latency metric, ``status --wait-synced``) only towards a *backed* height:
one that f + 1 peers claim, or that the replica asked for (``request``: it has
f + 1 signed STATUS messages behind it). A claim falls when its peer leaves,
and is capped below the first height the peer failed to serve (a request that
timed out, or an answer with none of the blocks asked for) until the node has
caught up to the cap, whatever the peer claims meanwhile. An answer cut short
(a frame limit) is not a failure: the rest is asked for again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from consensus.messages import CommittedBlock
from consensus.quorum import CertificateError, verify_commit_certificate
from node.core.block import Block, BlockError
from node.net.wire import BlocksFrame, GetBlocksFrame, encode_frame

# (height) -> the config and verifier of the set that certifies it, None while unknown
Certifier = Callable[[int], tuple[ConsensusConfig, Verifier] | None]


@dataclass
class _Request:
    start: int
    count: int
    peer: bytes
    sent_ms: int


class BlockSync:
    def __init__(
        self,
        config: ConsensusConfig,
        verifier: Verifier,
        *,
        send: Callable[[bytes, bytes], bool],
        feed: Callable[[CommittedBlock], None],
        payload_root: Callable[[tuple[bytes, ...]], bytes],
        penalise: Callable[[bytes, str], None],
        parallel: int = 4,
        chunk: int = 64,
        request_timeout_ms: int = 5_000,
        lag_threshold: int = 8,
        stall_ms: int = 3_000,
        certifier: Certifier | None = None,
    ) -> None:
        self._config = config
        self._verifier = verifier
        # one set for good unless the daemon says which certifies each height
        self._certifier: Certifier = certifier or (lambda _h: (config, verifier))
        self._send = send
        self._feed = feed
        self._payload_root = payload_root
        self._penalise = penalise
        self.parallel = parallel
        self.chunk = chunk
        self.request_timeout_ms = request_timeout_ms
        self.lag_threshold = lag_threshold
        self.stall_ms = stall_ms
        self.peer_heights: dict[bytes, int] = {}
        self.local_height = 0  # what the driver has committed
        self.fed_height = 0  # what we handed to the driver
        self.target = 0  # what we fetch towards: at most the best (capped) claim
        self._wanted = 0  # the highest height asked for (status rules or the replica)
        self._certified = 0  # the highest height the replica asked for
        self._caps: dict[bytes, int] = {}  # peer -> the height it failed to serve, less one
        self._in_flight: dict[int, _Request] = {}  # by chunk start
        self._received: dict[int, CommittedBlock] = {}
        # above the horizon: not checked yet, with the peer that sent it
        self._unchecked: dict[int, tuple[CommittedBlock, bytes]] = {}
        self._local_moved_ms = 0
        self._rr = 0

    # ------------------------------------------------------------ progress
    @property
    def backed_target(self) -> int:
        """The highest height peers back: f + 1 claims, or the replica's request."""
        claims = sorted(self._claims().values(), reverse=True)
        quorum = self._weak_quorum()
        by_claims = claims[quorum - 1] if len(claims) >= quorum else 0
        return min(self.target, max(by_claims, self._certified))

    @property
    def syncing(self) -> bool:
        backed = self.backed_target
        return backed > self.local_height + self.lag_threshold // 2 or (
            bool(self._in_flight) and backed > self.local_height
        )

    def progress(self) -> dict[str, int]:
        return {
            "local_height": self.local_height,
            "target_height": max(self.backed_target, self.local_height),
            "best_peer_height": max(self._claims().values(), default=0),
            "requests_in_flight": len(self._in_flight),
        }

    def _weak_quorum(self) -> int:
        """f + 1 of the set that certifies the next height (known: it is inside the horizon)."""
        sets = self._certifier(self.local_height + 1)
        return (sets[0] if sets is not None else self._config).f + 1

    def on_committed(self, height: int, now_ms: int) -> None:
        self.local_height = max(self.local_height, height)
        self.fed_height = max(self.fed_height, height)
        self._local_moved_ms = now_ms
        for peer, cap in list(self._caps.items()):
            if cap <= self.local_height:  # caught up to it: the peer gets another chance
                del self._caps[peer]
        for h in [h for h in self._unchecked if h <= self.fed_height]:
            del self._unchecked[h]
        if self._unchecked:  # the horizon moved: what waited may be checked now
            self._drain()

    def _claims(self) -> dict[bytes, int]:
        """Each connected peer's claimed height, capped where it failed to serve."""
        caps = self._caps
        return {p: min(h, caps.get(p, h)) for p, h in self.peer_heights.items()}

    def _retarget(self) -> None:
        best = max(self._claims().values(), default=0)
        self.target = max(self.fed_height, min(self._wanted, best))

    def _cap(self, peer: bytes, failed_at: int) -> None:
        cap = max(failed_at - 1, self.local_height)
        cap = self._caps[peer] = min(self._caps.get(peer, cap), cap)
        for start, req in list(self._in_flight.items()):
            if req.peer == peer and start > cap:  # it will not serve these either
                del self._in_flight[start]
        self._retarget()

    # --------------------------------------------------------------- inputs
    def on_status(self, peer: bytes, height: int, now_ms: int) -> None:
        self.peer_heights[peer] = height
        claim = self._claims()[peer]
        if claim > self.local_height + self.lag_threshold or (
            claim > self.local_height and now_ms - self._local_moved_ms > self.stall_ms
        ):
            self._wanted = max(self._wanted, claim)
        self._retarget()
        self.tick(now_ms)

    def on_peer_down(self, peer: bytes) -> None:
        self.peer_heights.pop(peer, None)
        for start, req in list(self._in_flight.items()):
            if req.peer == peer:
                del self._in_flight[start]
        self._retarget()

    def request(self, target: int, hints: Sequence[object] = ()) -> None:
        """The replica's request: backed (signed STATUS messages of f + 1 validators)
        unless it names fewer than f + 1 peers (a stalled replica asking the one
        peer ahead: fetched from, but no evidence that the node is behind)."""
        self._wanted = max(self._wanted, target)
        if not hints or len(hints) >= self._weak_quorum():
            self._certified = max(self._certified, target)  # counts up to what claims allow
        self._retarget()

    def on_blocks(self, peer: bytes, blocks: Sequence[bytes], now_ms: int) -> None:
        heights: list[int] = []
        for raw in blocks:
            try:
                block = Block.from_bytes(raw)
                if block.header.chain_id != self._config.chain_id:
                    raise BlockError("block of another chain")
                committed = block.committed()
                if self._payload_root(committed.payload) != committed.proposal.payload_root:
                    raise BlockError("its transactions do not match the certified payload root")
                checked = self._check(committed)
            except (BlockError, CertificateError) as exc:
                self._penalise(peer, f"bad sync block: {exc}")
                continue
            h = block.height
            heights.append(h)
            if self.fed_height < h <= self.target:  # only what we asked for
                if checked:
                    self._received[h] = committed
                else:
                    self._unchecked[h] = (committed, peer)
        self._answered(peer, heights)
        self._drain()
        self.tick(now_ms)

    def _answered(self, peer: bytes, heights: list[int]) -> None:
        """Settle the request of ``peer`` that this answer is for: the one holding its
        first block, else (an empty answer) its oldest. One with none of the blocks
        asked for caps the peer's claim; a partial one is asked for again."""
        mine = sorted(
            (r for r in self._in_flight.values() if r.peer == peer), key=lambda r: r.sent_ms
        )
        if not mine:
            return
        req = mine[0]
        if heights:
            for r in mine:
                if r.start <= heights[0] < r.start + r.count:
                    req = r
                    break
        del self._in_flight[req.start]
        wanted = range(req.start, req.start + req.count)
        if not any(h in wanted for h in heights):
            self._cap(peer, req.start)

    def _check(self, committed: CommittedBlock) -> bool:
        """Check the certificate against its height's set: True when it holds, False
        when that set is not known yet; ``CertificateError`` when it does not hold."""
        sets = self._certifier(committed.height)
        if sets is None:
            return False
        config, verifier = sets
        verify_commit_certificate(config, verifier, committed.proposal, committed.certificate)
        return True

    def _drain(self) -> None:
        while True:
            h = self.fed_height + 1
            if h in self._unchecked:
                committed, peer = self._unchecked[h]
                try:
                    if not self._check(committed):
                        return  # its set is not known yet: once the blocks below ran
                except CertificateError as exc:
                    del self._unchecked[h]
                    self._penalise(peer, f"bad sync block: {exc}")
                    return
                del self._unchecked[h]
                self._received[h] = committed
            if h not in self._received:
                return
            self.fed_height = h
            self._feed(self._received.pop(h))

    # ----------------------------------------------------------- requests
    def tick(self, now_ms: int) -> None:
        """Re-assign timed-out chunks and send new requests, up to ``parallel``.

        Blocks handed to the driver that did not advance the committed height
        within a request timeout (refused by the replica, or lost) are fetched
        again rather than waited for forever."""
        if self.fed_height > self.local_height and now_ms - self._local_moved_ms > (
            self.request_timeout_ms
        ):
            self.fed_height = self.local_height
            self._local_moved_ms = now_ms
        for start, req in list(self._in_flight.items()):
            if self._in_flight.get(start) is req and now_ms - req.sent_ms > self.request_timeout_ms:
                del self._in_flight[start]
                self._penalise(req.peer, "sync request timed out")
                self._cap(req.peer, req.start)
        if self.target <= self.fed_height:
            return
        start = self.fed_height + 1
        while len(self._in_flight) < self.parallel and start <= self.target:
            count = min(self.chunk, self.target - start + 1)
            if start in self._in_flight or all(
                h in self._received or h in self._unchecked for h in range(start, start + count)
            ):
                start += count
                continue
            peer = self._pick_peer(start + count - 1) or self._pick_peer(start)
            if peer is None:
                return
            self._in_flight[start] = _Request(start, count, peer, now_ms)
            self._send(peer, encode_frame(GetBlocksFrame(start, count)))
            start += count

    def _pick_peer(self, height: int) -> bytes | None:
        candidates = sorted(p for p, h in self._claims().items() if h >= height)
        if not candidates:
            return None
        self._rr += 1
        return candidates[self._rr % len(candidates)]


# ------------------------------------------------------------------ serving
# Penalty points of a GetBlocks request beyond a peer's pending limit: a peer
# that asks far faster than it reads its answers (the default threshold of 100
# points bans it after 20 such requests, less decay).
OVER_ASKING_POINTS = 5


@dataclass
class _Serving:
    pending: deque[tuple[int, int]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    tokens: float = 0.0
    last: float = 0.0


class BlockServer:
    """Answers peers' ``GetBlocksFrame`` lazily (issue 11, item 5).

    Per peer at most ``max_pending`` requests wait, in order; a request beyond
    that is dropped and penalised (``OVER_ASKING_POINTS``). One task per peer
    answers them one at a time: it waits until the peer's send queue holds at
    most ``room_bytes`` (``wait_for_room``), and for the peer's rate limit (a
    token bucket of ``chunks_per_second``), and only then reads the blocks
    (``read``) and queues the answer. What one peer costs is its pending
    requests (a few integers each) and at most one answer being built, however
    fast it asks and however slowly it reads."""

    def __init__(
        self,
        read: Callable[[int, int], list[bytes]],
        send: Callable[[bytes, bytes], bool],
        wait_for_room: Callable[[bytes, int], Awaitable[bool]],
        penalise: Callable[[bytes, str, int], None],
        *,
        room_bytes: int,
        max_pending: int = 8,
        chunks_per_second: float = 50.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending < 1 or chunks_per_second <= 0 or room_bytes < 0:
            raise ValueError("pending limit and rate must be positive, room_bytes >= 0")
        self._read = read
        self._send = send
        self._wait_for_room = wait_for_room
        self._penalise = penalise
        self.room_bytes = room_bytes
        self.max_pending = max_pending
        self.rate = chunks_per_second
        self._burst = max(1.0, chunks_per_second)
        self._sleep = sleep
        self._clock = clock
        self._peers: dict[bytes, _Serving] = {}
        self.refused = 0

    def pending(self, peer: bytes) -> int:
        """How many requests of ``peer`` wait."""
        state = self._peers.get(peer)
        return 0 if state is None else len(state.pending)

    def on_request(self, peer: bytes, start: int, count: int) -> None:
        """Queue one request of ``peer`` (never blocks)."""
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Serving(tokens=self._burst, last=self._clock())
        if len(state.pending) >= self.max_pending:
            self.refused += 1
            self._penalise(peer, "asked for blocks faster than it reads them", OVER_ASKING_POINTS)
            return
        state.pending.append((start, count))
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(
                self._serve(peer, state), name=f"sync-serve-{peer.hex()[:16]}"
            )

    def forget(self, peer: bytes) -> None:
        """``peer`` left: drop its requests and stop serving it."""
        state = self._peers.pop(peer, None)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def stop(self) -> None:
        """Stop every serving task; all are done on return."""
        tasks = [s.task for s in self._peers.values() if s.task is not None]
        self._peers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, peer: bytes, state: _Serving) -> None:
        while state.pending:
            if not await self._wait_for_room(peer, self.room_bytes):
                state.pending.clear()
                return
            await self._take_token(state)
            if not state.pending:
                return
            start, count = state.pending.popleft()
            self._send(peer, encode_frame(BlocksFrame(self._read(start, count))))

    async def _take_token(self, state: _Serving) -> None:
        now = self._clock()
        state.tokens = min(self._burst, state.tokens + (now - state.last) * self.rate)
        state.last = now
        if state.tokens < 1:
            await self._sleep((1 - state.tokens) / self.rate)
            state.tokens = 1.0
            state.last = self._clock()
        state.tokens -= 1
