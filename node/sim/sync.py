"""The simulator's model of block sync and of the daemon's status heartbeat.

``BlockSync`` carries out a node's ``NeedSync``: a sync request to up to f+1
of the hinted peers (every peer without a hint), at most one round per
``sync_retry_ms``; a node that gets one answers from its durable chain with
the committed blocks above the requester's height, as many as
``sync_max_blocks`` and one frame allow (node/net/sync.py's ``_serve_blocks``
cut); the blocks that arrive become ``OnBlock`` inputs of the requester.

``StatusSync`` models the daemon's ``StatusFrame`` sync (``status_sync``):
every node announces its height to its peers each ``status_interval_ms``
(through the network model), remembers what its peers announced, and decides
by node/net/sync.py's rule when it is behind and whom to ask; the asking is
``BlockSync``'s. Every request, response and announcement is an event on the
queue, delayed, lost or cut like any message of its name.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from consensus.messages import CommittedBlock, decode_block, encode_block
from node.engine.core import Input, OnBlock
from node.sim.events import STATUS, SYNC_REQ, SYNC_RESP, EventQueue
from node.sim.faults import Delays
from node.sim.metrics import STATUS_FRAME, SYNC_REQUEST, SYNC_RESPONSE, Metrics
from node.sim.network import SYNC_FRAME_RESERVE, FrameLimit
from node.sim.node import SimNode
from node.sim.scenario import NetworkSpec

# the delays of a message of one name (node.sim.faults.Faults.link)
Link = Callable[[str], Delays]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    requester: int
    from_height: int


@dataclass(frozen=True, slots=True)
class SyncResponse:
    blocks: tuple[CommittedBlock, ...] | tuple[bytes, ...]


class BlockSync:
    """Sync requests and responses between the ``nodes`` of one run."""

    __slots__ = (
        "f",
        "feed",
        "frames",
        "link",
        "metrics",
        "n",
        "nodes",
        "oversized",
        "queue",
        "rng",
        "spec",
        "wire",
    )

    def __init__(
        self,
        spec: NetworkSpec,
        f: int,
        nodes: Sequence[SimNode],
        *,
        rng: random.Random,
        queue: EventQueue,
        link: Link,
        frames: FrameLimit,
        wire: bool,
        metrics: Metrics,
        feed: Callable[[SimNode, Input, int], None],
        oversized: Callable[[int, bool, str, int, int, int], None],
    ) -> None:
        self.spec = spec
        self.f = f
        self.nodes = nodes
        self.n = len(nodes)
        self.rng = rng
        self.queue = queue
        self.link = link
        self.frames = frames
        self.wire = wire
        self.metrics = metrics
        # an input for a node's replica (the engine's inbox)
        self.feed = feed
        # a frame over the limit: (src, honest, name, size, peers, vt)
        self.oversized = oversized

    def request(self, node: SimNode, hints: tuple[int, ...], vt: int) -> None:
        """Ask up to f+1 of the ``hints`` (every peer without one) for blocks,
        unless ``node`` asked less than ``sync_retry_ms`` ago."""
        if vt < node.sync_until:
            return
        node.sync_until = vt + self.spec.sync_retry_ms
        peers = [h for h in hints if h != node.id and 0 <= h < self.n] or list(node.peers)
        k = self.f + 1
        if len(peers) > k:
            peers = self.rng.sample(peers, k)
        req = SyncRequest(node.id, len(node.store.chain))
        delays = self.link(SYNC_REQUEST)
        for dst in peers:
            self.metrics.count(SYNC_REQUEST)
            for d in delays(node.id, dst):
                self.queue.push(vt + d, SYNC_REQ, dst, req)

    def on_request(self, node: SimNode, req: SyncRequest, vt: int) -> None:
        """``node`` answers with the blocks above the requester's height that fit a frame."""
        if not node.up or (node.behaviour is not None and not node.behaviour.answers_sync):
            return
        blocks = node.store.blocks_after(req.from_height, self.spec.sync_max_blocks)
        if not blocks:
            return
        fitting = self.frames.cut_blocks(blocks)  # what one frame holds, as the daemon cuts it
        if not fitting:  # even the first block is over the frame budget
            size = self.frames.block_size(blocks[0]) + SYNC_FRAME_RESERVE
            self.oversized(node.id, node.honest, SYNC_RESPONSE, size, 1, vt)
            return
        blocks = fitting
        self.metrics.count(SYNC_RESPONSE)
        resp = SyncResponse(tuple(encode_block(b) for b in blocks) if self.wire else blocks)
        for d in self.link(SYNC_RESPONSE)(node.id, req.requester):
            self.queue.push(vt + d, SYNC_RESP, req.requester, resp)

    def on_response(self, node: SimNode, resp: SyncResponse, vt: int) -> None:
        """The blocks ``node`` does not have yet, in order, as inputs of its replica."""
        for item in resp.blocks:
            if not node.up:
                return
            block = decode_block(item) if isinstance(item, bytes) else item
            if block.proposal.height <= len(node.store.chain):
                continue
            self.feed(node, OnBlock(block), vt)


class StatusSync:
    """The status heartbeat of the ``nodes`` of one run and the sync decisions it drives."""

    __slots__ = ("ask", "link", "metrics", "moved_at", "nodes", "peer_heights", "queue", "spec")

    def __init__(
        self,
        spec: NetworkSpec,
        nodes: Sequence[SimNode],
        *,
        queue: EventQueue,
        link: Link,
        metrics: Metrics,
        ask: Callable[[SimNode, tuple[int, ...], int], None],
    ) -> None:
        self.spec = spec
        self.nodes = nodes
        self.queue = queue
        self.link = link
        self.metrics = metrics
        # a sync request round to the hinted peers (BlockSync.request, through the engine)
        self.ask = ask
        n = len(nodes)
        # per node, the heights its peers announced, and when its own last moved
        self.peer_heights: list[dict[int, int]] = [{} for _ in range(n)]
        self.moved_at = [0] * n

    def start(self, rng: random.Random) -> None:
        """Each node's first heartbeat, at its own phase within the interval."""
        every = self.spec.status_interval_ms
        for node in self.nodes:
            at = rng.randrange(every)
            self.queue.call_at(at, partial(self.tick, node.id, at))

    def tick(self, i: int, vt: int) -> None:
        """Node ``i`` announces its height to every peer (through the network
        model) and, like the daemon's status loop, checks whether to sync."""
        at = vt + self.spec.status_interval_ms
        self.queue.call_at(at, partial(self.tick, i, at))
        node = self.nodes[i]
        if not node.up:
            return
        height: int | None = len(node.store.chain)
        if node.behaviour is not None:
            height = node.behaviour.status_height(len(node.store.chain))
        if height is not None:
            delays = self.link(STATUS_FRAME)
            push = self.queue.push
            for dst in node.peers:
                self.metrics.count(STATUS_FRAME)
                for d in delays(i, dst):
                    push(vt + d, STATUS, dst, (i, height))
        self.check(node, vt)

    def on_status(self, node: SimNode, sender: int, height: int, vt: int) -> None:
        if node.up:
            self.peer_heights[node.id][sender] = height
            self.check(node, vt)

    def check(self, node: SimNode, vt: int) -> None:
        """node/net/sync.py's rule: behind when a peer is more than the lag threshold
        ahead, or ahead at all while our height has not moved for the stall time.
        Blocks are asked (the engine's sync path) from the peers that announced
        the whole next chunk, else from any peer that announced more than us."""
        spec = self.spec
        heights = self.peer_heights[node.id]
        own = len(node.store.chain)
        best = max(heights.values(), default=0)
        if best <= own:
            return
        stalled = vt - self.moved_at[node.id] > spec.sync_stall_ms
        if best <= own + spec.sync_lag_threshold and not stalled:
            return
        if vt >= node.sync_until:
            self.metrics.status_syncs += 1
        self.sync_to(node, best, vt)

    def sync_to(self, node: SimNode, target: int, vt: int) -> None:
        """Blocks up to ``target`` from the peers node/net/sync.py would pick: those whose
        announced height covers the next chunk, else any that announced more than
        we have; none (no request) when no peer announced such a height."""
        heights = self.peer_heights[node.id]
        own = len(node.store.chain)
        chunk_end = min(target, own + self.spec.sync_max_blocks)
        peers = sorted(heights)
        hints = tuple(p for p in peers if heights[p] >= chunk_end) or tuple(
            p for p in peers if heights[p] > own
        )
        if hints:
            self.ask(node, hints, vt)
