"""The simulated network: per-link delay, loss, duplication, reordering and partitions.

``Network.delays(src, dst)`` answers, for one message, the list of integer
millisecond delays after which copies of it arrive: ``()`` when the message is
lost or the link is cut by a partition, two entries when it is duplicated.
Every random draw comes from the one ``random.Random`` of the run, and only
integer draws are used (``getrandbits``/``randrange``), so a run replays
bit for bit on any platform.

``FrameLimit`` models the daemon's peer frame limit (``p2p.max_frame_bytes``,
node/net/transport.py): a consensus message travels as a ``ConsensusFrame``
(node/net/wire.py) of its msgpack encoding plus a fixed few bytes, and a frame
over the limit is refused by the transport, so the simulator drops it (and
counts it). Sizes are cached per message object, so a broadcast, or a message
a Byzantine node posts to every peer, is encoded once. Sync responses are cut
to the frame budget the way the daemon's ``_serve_blocks`` cuts them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from consensus.messages import CommittedBlock, Message, encode_block, encode_message
from node.net.wire import CONSENSUS_FRAME_OVERHEAD
from node.sim.scenario import PPM, Latency, NetworkSpec

_BITS = 32


def _threshold(ppm: int) -> int:
    """A ``getrandbits(32)`` value below this happens with probability ppm/1e6."""
    return (ppm << _BITS) // PPM


class Link:
    """The delay model of one directed link."""

    __slots__ = ("_dup", "_fixed", "_lat", "_loss", "_reorder", "_reorder_ms", "_rng")

    def __init__(
        self,
        rng: random.Random,
        latency: Latency,
        loss_ppm: int,
        duplicate_ppm: int,
        reorder_ppm: int,
        reorder_ms: int,
    ) -> None:
        self._rng = rng
        self._lat = latency
        self._loss = _threshold(loss_ppm)
        self._dup = _threshold(duplicate_ppm)
        self._reorder = _threshold(reorder_ppm)
        self._reorder_ms = reorder_ms
        simple = latency.kind == "constant" and not (loss_ppm or duplicate_ppm or reorder_ppm)
        self._fixed: tuple[int, ...] | None = (latency.a,) if simple else None

    def delays(self) -> tuple[int, ...]:
        if self._fixed is not None:
            return self._fixed
        bits = self._rng.getrandbits
        if self._loss and bits(_BITS) < self._loss:
            return ()
        first = self.one_delay()
        if self._dup and bits(_BITS) < self._dup:
            return (first, self.one_delay())
        return (first,)

    def one_delay(self) -> int:
        d = sample_latency(self._rng, self._lat)
        if self._reorder and self._rng.getrandbits(_BITS) < self._reorder:
            d += self._rng.randrange(self._reorder_ms + 1)
        return d


def sample_latency(rng: random.Random, lat: Latency) -> int:
    if lat.kind == "constant":
        return lat.a
    if lat.kind == "uniform":
        return lat.a + rng.randrange(lat.b - lat.a + 1)
    # normal: the sum of three uniforms on [-b, b] has standard deviation b
    if lat.b == 0:
        return lat.a
    span = 2 * lat.b + 1
    r = rng.randrange
    d = lat.a + r(span) + r(span) + r(span) - 3 * lat.b
    return d if d > 0 else 0


class Network:
    """All links of an ``n``-node cluster plus the current partition."""

    def __init__(self, spec: NetworkSpec, n: int, rng: random.Random) -> None:
        self.n = n
        self._rng = rng
        self._spec = spec
        default = Link(
            rng, spec.latency, spec.loss_ppm, spec.duplicate_ppm, spec.reorder_ppm, spec.reorder_ms
        )
        self.links: list[list[Link]] = [[default] * n for _ in range(n)]
        for rule in spec.links:
            link = Link(
                rng,
                rule.latency or spec.latency,
                spec.loss_ppm if rule.loss_ppm is None else rule.loss_ppm,
                spec.duplicate_ppm if rule.duplicate_ppm is None else rule.duplicate_ppm,
                spec.reorder_ppm if rule.reorder_ppm is None else rule.reorder_ppm,
                spec.reorder_ms,
            )
            for s in rule.src:
                for d in rule.dst:
                    self.links[s][d] = link
        # group[i] == group[j] iff i and j can talk; all zero when healed
        self.group = [0] * n
        self.partitioned = False

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut the cluster into ``groups``; nodes listed nowhere form one more group."""
        self.group = [len(groups)] * self.n
        for gi, members in enumerate(groups):
            for i in members:
                self.group[i] = gi
        self.partitioned = True

    def heal(self) -> None:
        self.group = [0] * self.n
        self.partitioned = False

    def connected(self, src: int, dst: int) -> bool:
        return self.group[src] == self.group[dst]

    def delays(self, src: int, dst: int) -> tuple[int, ...]:
        if self.group[src] != self.group[dst]:
            return ()
        return self.links[src][dst].delays()

    def client_delay(self) -> int:
        return sample_latency(self._rng, self._spec.client_latency)


# the daemon's BlocksFrame budget: the frame limit less this, each block costs +16
SYNC_FRAME_RESERVE = 1024
SYNC_BLOCK_OVERHEAD = 16
_CACHE_LIMIT = 4096


class FrameLimit:
    """Frame sizes of consensus messages and sync responses against ``max_frame_bytes``."""

    __slots__ = ("_cache", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        # id(object) -> (object, encoded size): the object is kept so its id stays its own
        self._cache: dict[int, tuple[object, int]] = {}

    def _encoded(self, obj: Message | CommittedBlock, encode: Callable[[Any], bytes]) -> int:
        key = id(obj)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        size = len(encode(obj))
        self._cache[key] = (obj, size)
        return size

    def frame_size(self, msg: Message, encoded: bytes | None = None) -> int:
        """Bytes of the ``ConsensusFrame`` that carries ``msg``, its epoch counted at
        its widest (``encoded``: its encoding when the caller has it already)."""
        body = len(encoded) if encoded is not None else self._encoded(msg, encode_message)
        return body + CONSENSUS_FRAME_OVERHEAD

    def fits(self, msg: Message, encoded: bytes | None = None) -> bool:
        return self.frame_size(msg, encoded) <= self.max_frame_bytes

    def block_size(self, block: CommittedBlock) -> int:
        return self._encoded(block, encode_block)

    def cut_blocks(self, blocks: Sequence[CommittedBlock]) -> tuple[CommittedBlock, ...]:
        """The leading blocks that fit in one sync response frame, as the daemon
        packs them (budget = limit - 1024, each block its size + 16)."""
        budget = self.max_frame_bytes - SYNC_FRAME_RESERVE
        out: list[CommittedBlock] = []
        for b in blocks:
            cost = self.block_size(b) + SYNC_BLOCK_OVERHEAD
            if cost > budget:
                break
            budget -= cost
            out.append(b)
        return tuple(out)
