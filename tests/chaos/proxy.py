"""Fault-injection TCP proxies for the peer links of a test cluster (loopback only).

Toxiproxy in miniature, on asyncio. A ``LinkProxy`` stands on one *directed*
link: it listens on ``127.0.0.1:<port>`` and forwards every connection it
accepts to one target ``host:port``. A ``ProxyNet`` owns one proxy per ordered
pair ``(i, j)`` of an N-node cluster: node ``i`` dials node ``j`` at
``net.address(i, j)``, whose proxy forwards to ``j``'s real p2p listener.

Directions. A peer link between two hygeia nodes is *one* websocket over *one*
TCP connection, dialled by either side, and both nodes' messages flow over it.
So every proxy has two directions: ``UP`` (dialer -> target, i -> j on proxy
``(i, j)``) and ``DOWN`` (target -> dialer). "Messages from a to b are lost" is
therefore *two* proxy directions: ``UP`` of proxy ``(a, b)`` and ``DOWN`` of
proxy ``(b, a)``; ``ProxyNet`` does this mapping, tests of the cluster never
need to.

What a partition is here. On a real network a partition drops packets; TCP
never delivers a stream with a gap: the sender's data stays unacknowledged in
its send buffer, its window closes and its writes block, until either the
network heals (TCP retransmits and *everything* arrives, late) or a timeout
gives up on the connection (the application's heartbeat, or the kernel's
retransmission limit) and the connection is reset. New connections do not
form at all (SYN or SYN-ACK lost). A byte-dropping proxy cannot reproduce that:
dropping arbitrary bytes of a TCP stream corrupts the websocket framing, which
no real network does. So a blocked direction, in the default ``"hold"`` mode:

* stops delivering: bytes read from the sender are held back in order, up to
  ``max_held`` bytes per connection and direction; beyond that the proxy stops
  reading, so TCP back-pressure reaches the sender exactly as a closed window
  would (memory stays bounded);
* delivers everything held, in order, when the direction is unblocked, as TCP
  retransmission would;
* with ``reset_after=S``, resets (RST) a connection that has had bytes held
  back for ``S`` seconds, as a retransmission timeout would (without it the
  nodes' own websocket heartbeat ends a stalled link, which is what happens
  on a real network too);
* lets new connections open locally but does not connect them onward while
  either direction of the proxy is blocked (a lost SYN or SYN-ACK): the dialer
  sees its handshake hang until its own timeout; at unblock, a still-waiting
  connection is connected onward (the SYN retransmit that gets through).

One-way loss is one blocked direction. The ``"drop"`` mode is the lossy
alternative: bytes of a blocked direction are read and discarded (counted),
and since the stream now has a gap, every connection that lost bytes is reset
when the direction is unblocked; it can never carry a valid frame again.

Other faults, per direction: added latency with jitter (a per-chunk delay,
seeded; a chunk is never delivered before the one ahead of it, so order is
kept as TCP keeps it), a bandwidth cap (bytes per second), a slow drip (a few
bytes at a time with a pause between), and ``reset()`` (close every current
connection with RST on both sides).

Every task a proxy starts is named ``chaos-proxy...`` and ends in ``close()``;
``ProxyThread`` runs a ``ProxyNet`` on its own event loop for synchronous
tests (the functional framework is synchronous).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import itertools
import math
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeVar

HOST = "127.0.0.1"
TASK_PREFIX = "chaos-proxy"
CHUNK = 16 * 1024  # most bytes read from a socket at once
DEFAULT_MAX_HELD = 256 * 1024  # bytes held back per connection and direction
CONNECT_TIMEOUT = 5.0  # to open the onward connection to the target
RATE_SLICE = 0.02  # a bandwidth-capped direction writes about this many seconds' worth at once

T = TypeVar("T")
BlockMode = Literal["hold", "drop"]
Pair = tuple[int, int]  # (source node, destination node): messages from source to destination


class Direction(enum.Enum):
    """One direction of a proxied connection."""

    UP = "up"  # from the dialer to the target
    DOWN = "down"  # from the target back to the dialer


BOTH: tuple[Direction, ...] = (Direction.UP, Direction.DOWN)


def _directions(direction: Direction | None) -> tuple[Direction, ...]:
    return BOTH if direction is None else (direction,)


@dataclass
class Faults:
    """The faults of one direction of one proxy (defaults: none)."""

    blocked: bool = False
    mode: BlockMode = "hold"
    reset_after: float | None = None  # seconds of held-back bytes before the connection is reset
    latency: float = 0.0  # seconds added to every chunk
    jitter: float = 0.0  # +- seconds, uniform, seeded
    rate: float | None = None  # bytes per second
    drip_bytes: int | None = None  # forward at most this many bytes ...
    drip_interval: float = 0.0  # ... then pause this many seconds

    @property
    def shaped(self) -> bool:
        """Whether writes go piece by piece (bandwidth cap or drip)."""
        return self.rate is not None or self.drip_bytes is not None


@dataclass
class DirectionStats:
    forwarded: int = 0  # bytes written to the other side
    dropped: int = 0  # bytes discarded by a "drop" block
    peak_held: int = 0  # most bytes one connection held back at once


@dataclass
class ProxyStats:
    accepted: int = 0  # connections accepted from dialers
    connected: int = 0  # of those, connected onward to the target
    upstream_failures: int = 0  # onward connections refused or timed out (dialer reset)
    resets: int = 0  # connections reset by reset(), a stall timeout or a lossy unblock
    errors: int = 0  # connections ended by an error on one side (the other side is reset)
    up: DirectionStats = field(default_factory=DirectionStats)
    down: DirectionStats = field(default_factory=DirectionStats)

    def of(self, direction: Direction) -> DirectionStats:
        return self.up if direction is Direction.UP else self.down


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close a connection with RST (SO_LINGER 0), not FIN."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Pipe:
    """One direction of one connection: the chunks read and not yet delivered."""

    def __init__(
        self, direction: Direction, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        self.direction = direction
        self.src = src
        self.dst = dst
        self.queue: deque[tuple[float, bytes | None]] = deque()  # (deliver at, data; None: EOF)
        self.held = 0
        self.last_at = 0.0
        self.lost_bytes = False  # a "drop" block discarded some: the stream has a gap
        self.data_ready = asyncio.Event()
        self.space = asyncio.Event()
        self.stall_timer: asyncio.TimerHandle | None = None

    def push(self, at: float, data: bytes | None) -> None:
        self.last_at = at = max(at, self.last_at)
        self.queue.append((at, data))
        if data is not None:
            self.held += len(data)
        self.data_ready.set()

    def cancel_stall(self) -> None:
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None


class _Conn:
    """One accepted connection and its onward connection to the target."""

    def __init__(
        self,
        proxy: LinkProxy,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.name = f"{proxy.name}-c{number}"
        self.client_r = reader
        self.client_w = writer
        self.up_w: asyncio.StreamWriter | None = None
        self.pipes: dict[Direction, _Pipe] = {}
        self.pumps: list[asyncio.Task[None]] = []
        self.task: asyncio.Task[None] | None = None
        self.pending_timer: asyncio.TimerHandle | None = None
        self._resetting = False

    # -- control (from the proxy, synchronous) -----------------------------
    def reset(self) -> None:
        """RST both sides now and end the connection's tasks."""
        if self._resetting:
            return
        self._resetting = True
        self.proxy.stats.resets += 1
        self._abort()
        if self.task is not None:
            self.task.cancel()

    def stall(self, direction: Direction) -> None:
        """Bytes of ``direction`` are being held back or lost: start its reset timer."""
        reset_after = self.proxy.faults[direction].reset_after
        pipe = self.pipes.get(direction)
        if reset_after is None or pipe is None or pipe.stall_timer is not None:
            return
        pipe.stall_timer = asyncio.get_running_loop().call_later(
            reset_after, self._stall_expired, direction
        )

    def _stall_expired(self, direction: Direction) -> None:
        pipe = self.pipes.get(direction)
        if pipe is not None:
            pipe.stall_timer = None
        if self.proxy.faults[direction].blocked:
            self.reset()

    def _pending_expired(self) -> None:
        self.pending_timer = None
        if self.up_w is None and self.proxy.blocked_any:
            self.reset()

    def _abort(self) -> None:
        for pipe in self.pipes.values():
            pipe.cancel_stall()
        if self.pending_timer is not None:
            self.pending_timer.cancel()
            self.pending_timer = None
        _rst(self.client_w)
        _rst(self.up_w)

    # -- the connection's life ---------------------------------------------
    async def run(self) -> None:
        try:
            if not await self._connect_onward():
                return
            await self._pump()
        except asyncio.CancelledError:
            if not self._resetting:
                raise
        finally:
            await self._end_pumps()
            self._abort()

    async def _connect_onward(self) -> bool:
        proxy = self.proxy
        while proxy.blocked_any:  # a lost SYN: wait for the unblock (or a stall timeout)
            reset_after = min(
                (f.reset_after for f in proxy.faults.values() if f.blocked and f.reset_after),
                default=None,
            )
            if reset_after is not None and self.pending_timer is None:
                self.pending_timer = asyncio.get_running_loop().call_later(
                    reset_after, self._pending_expired
                )
            await proxy._wait_change()
        if self.pending_timer is not None:
            self.pending_timer.cancel()
            self.pending_timer = None
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(proxy.target_host, proxy.target_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            proxy.stats.upstream_failures += 1
            _rst(self.client_w)  # what the dialer would see: a refused connection
            return False
        self.up_w = up_w
        proxy.stats.connected += 1
        self.pipes = {
            Direction.UP: _Pipe(Direction.UP, self.client_r, up_w),
            Direction.DOWN: _Pipe(Direction.DOWN, up_r, self.client_w),
        }
        return True

    async def _pump(self) -> None:
        for d, pipe in self.pipes.items():
            self.pumps.append(
                asyncio.create_task(self._read_loop(pipe), name=f"{self.name}-{d.value}-read")
            )
            self.pumps.append(
                asyncio.create_task(self._write_loop(pipe), name=f"{self.name}-{d.value}-write")
            )
        pending: set[asyncio.Task[None]] = set(self.pumps)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.cancelled() or t.exception() is not None for t in done):
                self._resetting = True  # an error on one side: RST the other (as a router would)
                self.proxy.stats.errors += 1
                self._abort()
                return
        # both directions delivered their EOF: a clean close
        for w in (self.client_w, self.up_w):
            if w is not None:
                w.close()

    async def _end_pumps(self) -> None:
        for t in self.pumps:
            t.cancel()
        if self.pumps:
            await asyncio.gather(*self.pumps, return_exceptions=True)

    async def _read_loop(self, pipe: _Pipe) -> None:
        proxy = self.proxy
        stats = proxy.stats.of(pipe.direction)
        loop = asyncio.get_running_loop()
        while True:
            while pipe.held >= proxy.max_held:  # back-pressure: stop reading
                pipe.space.clear()
                await pipe.space.wait()
            data = await pipe.src.read(min(CHUNK, proxy.max_held - pipe.held))
            faults = proxy.faults[pipe.direction]
            if not data:
                pipe.push(loop.time() + faults.latency, None)
                return
            if faults.blocked and faults.mode == "drop":
                pipe.lost_bytes = True
                stats.dropped += len(data)
                self.stall(pipe.direction)
                continue
            pipe.push(loop.time() + proxy.sample_delay(pipe.direction), data)
            stats.peak_held = max(stats.peak_held, pipe.held)

    async def _write_loop(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not pipe.queue:
                pipe.data_ready.clear()
                await pipe.data_ready.wait()
            at, data = pipe.queue[0]
            if (delay := at - loop.time()) > 0:
                await asyncio.sleep(delay)
            await self._wait_unblocked(pipe)
            if data is None:
                pipe.queue.popleft()
                if pipe.dst.can_write_eof():
                    pipe.dst.write_eof()  # half-close, as the sender did
                return
            await self._deliver(pipe, data)
            pipe.queue.popleft()
            pipe.held -= len(data)
            pipe.space.set()

    async def _wait_unblocked(self, pipe: _Pipe) -> None:
        while self.proxy.faults[pipe.direction].blocked:
            self.stall(pipe.direction)
            await self.proxy._wait_change()

    async def _deliver(self, pipe: _Pipe, data: bytes) -> None:
        proxy = self.proxy
        stats = proxy.stats.of(pipe.direction)
        if not proxy.faults[pipe.direction].shaped:
            pipe.dst.write(data)
            await pipe.dst.drain()
            stats.forwarded += len(data)
            return
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            await self._wait_unblocked(pipe)  # a block may come in the middle of a drip
            faults = proxy.faults[pipe.direction]
            size, pause = len(data) - pos, 0.0
            if faults.drip_bytes is not None:
                size, pause = min(size, faults.drip_bytes), faults.drip_interval
            if faults.rate is not None:
                size = min(size, max(1, int(faults.rate * RATE_SLICE)))
                pause = max(pause, size / faults.rate)
            pipe.dst.write(bytes(view[pos : pos + size]))
            await pipe.dst.drain()
            pos += size
            stats.forwarded += size
            if pause > 0:
                await asyncio.sleep(pause)


class LinkProxy:
    """A fault-injecting TCP proxy for one directed link (see the module docstring).

    Fault changes are plain (synchronous) methods, called on the proxy's event
    loop; each replaces that fault's setting for the given direction (both
    when ``direction`` is None). ``heal()`` clears every fault.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        name: str = "link",
        seed: int = 0,
        listen: tuple[str, int] = (HOST, 0),
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        if max_held < 1:
            raise ValueError("max_held must be at least 1 byte")
        self.name = f"{TASK_PREFIX}-{name}"
        self.target_host, self.target_port = target
        self.listen_host, self.port = listen
        self.max_held = max_held
        self.faults: dict[Direction, Faults] = {d: Faults() for d in BOTH}
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Listen (on an ephemeral port unless ``listen`` named one)."""
        self._changed = asyncio.Event()  # bound to the running loop
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, reset every connection, wait until every task has ended."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        for conn in conns:
            conn.reset()
        tasks = [c.task for c in conns if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LinkProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def address(self) -> str:
        """``host:port`` to dial to reach the target through this proxy."""
        return f"{self.listen_host}:{self.port}"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            _rst(writer)
            return
        self.stats.accepted += 1
        conn = _Conn(self, next(self._numbers), reader, writer)
        self._conns.add(conn)
        conn.task = asyncio.create_task(conn.run(), name=conn.name)
        # (a task cancelled before its first step never runs its finally clauses)
        conn.task.add_done_callback(lambda _t: self._conns.discard(conn))

    # -- observation ---------------------------------------------------------
    @property
    def connections(self) -> int:
        """Connections open now (pending ones included)."""
        return len(self._conns)

    @property
    def pending(self) -> int:
        """Connections accepted and not (yet) connected onward: held by a block."""
        return sum(1 for c in self._conns if c.up_w is None)

    def held(self, direction: Direction) -> int:
        """Bytes of ``direction`` held back now, over every connection."""
        return sum(c.pipes[direction].held for c in self._conns if c.pipes)

    @property
    def blocked_any(self) -> bool:
        return any(f.blocked for f in self.faults.values())

    def sample_delay(self, direction: Direction) -> float:
        """The delay of the next chunk of ``direction``: latency +- jitter, never negative."""
        f = self.faults[direction]
        jitter = self._rng.uniform(-f.jitter, f.jitter) if f.jitter > 0 else 0.0
        return max(0.0, f.latency + jitter)

    # -- faults ----------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def block(
        self,
        direction: Direction | None = None,
        *,
        mode: BlockMode = "hold",
        reset_after: float | None = None,
    ) -> None:
        """Stop ``direction`` (both: None) as a partition does (module docstring)."""
        if mode not in ("hold", "drop"):
            raise ValueError(f"mode must be 'hold' or 'drop', got {mode!r}")
        if reset_after is not None and not reset_after > 0:
            raise ValueError("reset_after must be positive")
        for d in _directions(direction):
            f = self.faults[d]
            f.blocked, f.mode, f.reset_after = True, mode, reset_after
        self._notify()

    def unblock(self, direction: Direction | None = None) -> None:
        """Let ``direction`` (both: None) flow again: held bytes are delivered;
        a connection that lost bytes in it is reset (its stream has a gap)."""
        for d in _directions(direction):
            self.faults[d].blocked = False
            for conn in list(self._conns):
                pipe = conn.pipes.get(d)
                if pipe is None:
                    continue
                pipe.cancel_stall()
                if pipe.lost_bytes:
                    conn.reset()
        self._notify()

    partition = block

    def set_latency(
        self, latency: float, jitter: float = 0.0, direction: Direction | None = None
    ) -> None:
        """Delay every chunk by ``latency`` +- ``jitter`` seconds (0, 0: no delay)."""
        if latency < 0 or jitter < 0 or not math.isfinite(latency + jitter):
            raise ValueError("latency and jitter must be finite and >= 0")
        for d in _directions(direction):
            self.faults[d].latency, self.faults[d].jitter = latency, jitter
        self._notify()

    def set_bandwidth(self, rate: float | None, direction: Direction | None = None) -> None:
        """Cap ``direction`` at ``rate`` bytes per second (None: no cap)."""
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError("rate must be a positive number of bytes per second")
        for d in _directions(direction):
            self.faults[d].rate = rate
        self._notify()

    def set_drip(
        self, nbytes: int | None, interval: float = 0.0, direction: Direction | None = None
    ) -> None:
        """Forward ``nbytes`` at a time, ``interval`` seconds apart (None: off)."""
        if nbytes is not None and (nbytes < 1 or interval < 0):
            raise ValueError("drip needs nbytes >= 1 and interval >= 0")
        for d in _directions(direction):
            self.faults[d].drip_bytes = nbytes
            self.faults[d].drip_interval = interval if nbytes is not None else 0.0
        self._notify()

    def reset(self) -> int:
        """Close every current connection with RST on both sides; returns how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.reset()
        return len(conns)

    def heal(self) -> None:
        """Clear every fault of both directions (and deliver what was held)."""
        self.unblock()
        for d in BOTH:
            self.faults[d] = Faults()
        self._notify()


# ---------------------------------------------------------------------- shapes
# A "grudge" (Jepsen's word) is the set of pairs (a, b) whose messages from a to b
# are lost. These pure functions compute the grudge of each partition shape.


def _check_nodes(n: int, nodes: Iterable[int], what: str) -> list[int]:
    out = list(nodes)
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"{what}: nodes {bad} are not in 0..{n - 1}")
    return out


def grudge_partition(n: int, groups: Sequence[Iterable[int]]) -> frozenset[Pair]:
    """Nodes in different groups cannot talk; the groups must cover 0..n-1 exactly once."""
    lists = [_check_nodes(n, g, "partition") for g in groups]
    seen: dict[int, int] = {}
    for k, group in enumerate(lists):
        if not group:
            raise ValueError("partition: a group is empty")
        for i in group:
            if i in seen:
                raise ValueError(f"partition: node {i} is in two groups")
            seen[i] = k
    missing = sorted(set(range(n)) - seen.keys())
    if missing:
        raise ValueError(f"partition: nodes {missing} are in no group")
    return frozenset((a, b) for a in range(n) for b in range(n) if seen[a] != seen[b])


def grudge_isolate(n: int, node: int) -> frozenset[Pair]:
    """``node`` can talk to nobody, the others to each other."""
    _check_nodes(n, [node], "isolate")
    return grudge_partition(n, [[node], [i for i in range(n) if i != node]])


def grudge_bridge(n: int, left: Iterable[int], via: int, right: Iterable[int]) -> frozenset[Pair]:
    """Two sides that cannot talk to each other; ``via`` talks to both (Jepsen's bridge)."""
    lo, hi = _check_nodes(n, left, "bridge"), _check_nodes(n, right, "bridge")
    _check_nodes(n, [via], "bridge")
    if not lo or not hi:
        raise ValueError("bridge: both sides need a node")
    everyone = [*lo, via, *hi]
    if sorted(everyone) != list(range(n)):
        raise ValueError(f"bridge: left, via and right must cover 0..{n - 1} once, got {everyone}")
    cut = {(a, b) for a in lo for b in hi}
    return frozenset(cut | {(b, a) for a, b in cut})


def ring_reach(n: int) -> int:
    """The default ring reach: each node sees a majority (itself and 2 * reach others)."""
    return max(1, math.ceil((n // 2) / 2))


def grudge_ring(n: int, reach: int | None = None) -> frozenset[Pair]:
    """Nodes on a ring talk only to those within ``reach`` steps either way
    (Jepsen's majorities ring: each node sees a majority, no two the same one)."""
    r = ring_reach(n) if reach is None else reach
    if r < 1:
        raise ValueError("ring: reach must be at least 1")

    def distance(a: int, b: int) -> int:
        d = abs(a - b)
        return min(d, n - d)

    return frozenset((a, b) for a in range(n) for b in range(n) if a != b and distance(a, b) > r)


class ProxyNet:
    """The link proxies of an N-node cluster, one per ordered pair (module docstring).

    ``targets[j]`` is node ``j``'s real p2p listener; node ``i`` dials node ``j``
    at ``address(i, j)``. The partition shapes replace the current grudge;
    ``one_way`` adds to it; ``heal()`` clears every fault of every link.
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        *,
        seed: int = 0,
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        self.n = len(targets)
        if self.n < 2:
            raise ValueError("a ProxyNet needs at least 2 nodes")
        self.seed = seed
        master = random.Random(seed)
        self.proxies: dict[Pair, LinkProxy] = {
            (i, j): LinkProxy(
                targets[j], name=f"{i}to{j}", seed=master.getrandbits(64), max_held=max_held
            )
            for i in range(self.n)
            for j in range(self.n)
            if i != j
        }
        self._grudge: frozenset[Pair] = frozenset()
        self._block_mode: BlockMode = "hold"
        self._reset_after: float | None = None

    async def start(self) -> None:
        started: list[LinkProxy] = []
        try:
            for proxy in self.proxies.values():
                await proxy.start()
                started.append(proxy)
        except BaseException:
            for proxy in started:
                await proxy.close()
            raise

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.proxies.values()))

    async def __aenter__(self) -> ProxyNet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def proxy(self, i: int, j: int) -> LinkProxy:
        """The proxy node ``i`` dials to reach node ``j``."""
        return self.proxies[(i, j)]

    def address(self, i: int, j: int) -> str:
        """``host:port`` at which node ``i`` dials node ``j``."""
        return self.proxies[(i, j)].address

    def _legs(self, a: int, b: int) -> list[tuple[LinkProxy, Direction]]:
        """The proxy directions that carry messages from ``a`` to ``b``."""
        return [(self.proxies[(a, b)], Direction.UP), (self.proxies[(b, a)], Direction.DOWN)]

    def _pairs(self, pairs: Iterable[Pair] | None) -> list[Pair]:
        if pairs is None:
            return [(a, b) for a in range(self.n) for b in range(self.n) if a != b]
        out = list(pairs)
        for a, b in out:
            if a == b or not (0 <= a < self.n and 0 <= b < self.n):
                raise ValueError(f"no link from {a} to {b} in a net of {self.n}")
        return out

    # -- partitions ------------------------------------------------------------
    @property
    def grudge(self) -> frozenset[Pair]:
        """The pairs (a, b) whose messages from a to b are lost now."""
        return self._grudge

    def block(
        self,
        grudge: Iterable[Pair],
        *,
        mode: BlockMode = "hold",
        reset_after: float | None = None,
    ) -> None:
        """Make ``grudge`` the set of lost (source, destination) pairs; every other
        direction flows (the primitive behind the shapes)."""
        new = frozenset(self._pairs(grudge))
        self._grudge, self._block_mode, self._reset_after = new, mode, reset_after
        for (i, j), proxy in self.proxies.items():
            for d, pair in ((Direction.UP, (i, j)), (Direction.DOWN, (j, i))):
                if pair in new:
                    proxy.block(d, mode=mode, reset_after=reset_after)
                elif proxy.faults[d].blocked:
                    proxy.unblock(d)

    def partition(
        self,
        groups: Sequence[Iterable[int]],
        *,
        mode: BlockMode = "hold",
        reset_after: float | None = None,
    ) -> None:
        """Only nodes of one group talk to each other (groups cover every node once)."""
        self.block(grudge_partition(self.n, groups), mode=mode, reset_after=reset_after)

    def isolate(
        self, node: int, *, mode: BlockMode = "hold", reset_after: float | None = None
    ) -> None:
        """``node`` talks to nobody (e.g. the primary)."""
        self.block(grudge_isolate(self.n, node), mode=mode, reset_after=reset_after)

    def bridge(
        self,
        left: Iterable[int],
        via: int,
        right: Iterable[int],
        *,
        mode: BlockMode = "hold",
        reset_after: float | None = None,
    ) -> None:
        """``left`` and ``right`` cannot talk; ``via`` talks to both."""
        grudge = grudge_bridge(self.n, left, via, right)
        self.block(grudge, mode=mode, reset_after=reset_after)

    def ring(
        self,
        reach: int | None = None,
        *,
        mode: BlockMode = "hold",
        reset_after: float | None = None,
    ) -> None:
        """Each node talks only to its ring neighbours within ``reach``."""
        self.block(grudge_ring(self.n, reach), mode=mode, reset_after=reset_after)

    def one_way(self, src: int, dst: int) -> None:
        """Also lose messages from ``src`` to ``dst`` (``dst`` to ``src`` still flow)."""
        self.block(
            self._grudge | {(src, dst)}, mode=self._block_mode, reset_after=self._reset_after
        )

    # -- shaping ---------------------------------------------------------------
    def latency(
        self, latency: float, jitter: float = 0.0, pairs: Iterable[Pair] | None = None
    ) -> None:
        """Delay messages of ``pairs`` (default: every pair) by latency +- jitter seconds."""
        for a, b in self._pairs(pairs):
            for proxy, d in self._legs(a, b):
                proxy.set_latency(latency, jitter, d)

    def bandwidth(self, rate: float | None, pairs: Iterable[Pair] | None = None) -> None:
        """Cap messages of ``pairs`` (default: every pair) at ``rate`` bytes/s each link."""
        for a, b in self._pairs(pairs):
            for proxy, d in self._legs(a, b):
                proxy.set_bandwidth(rate, d)

    def drip(
        self, nbytes: int | None, interval: float, pairs: Iterable[Pair] | None = None
    ) -> None:
        """Forward messages of ``pairs`` ``nbytes`` at a time, ``interval`` s apart."""
        for a, b in self._pairs(pairs):
            for proxy, d in self._legs(a, b):
                proxy.set_drip(nbytes, interval, d)

    def reset(self, nodes: Iterable[int] | None = None) -> int:
        """RST every current connection touching ``nodes`` (default: all); how many."""
        which = set(range(self.n) if nodes is None else nodes)
        return sum(p.reset() for (i, j), p in self.proxies.items() if i in which or j in which)

    def heal(self) -> None:
        """Every link flows again with no fault (held bytes are delivered)."""
        self._grudge = frozenset()
        for proxy in self.proxies.values():
            proxy.heal()


class ProxyThread:
    """A ``ProxyNet`` on its own event loop in a daemon thread, for synchronous tests.

    ``with ProxyThread(targets, seed=s) as pt: pt.call(lambda net: net.isolate(0))``;
    ``call`` runs a function on the loop (where every fault method must run) and
    returns its result. ``address(i, j)`` is readable from any thread.
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        *,
        seed: int = 0,
        max_held: int = DEFAULT_MAX_HELD,
        timeout: float = 10.0,
    ) -> None:
        self.net = ProxyNet(targets, seed=seed, max_held=max_held)
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=TASK_PREFIX, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.net.start()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            await self.net.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.result(timeout=self._timeout)

    def call(self, fn: Callable[[ProxyNet], T]) -> T:
        """Run ``fn(net)`` on the proxies' loop and return its result."""
        if self._loop is None:
            raise RuntimeError("ProxyThread is not started")

        async def run() -> T:
            return fn(self.net)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(self._timeout)

    def address(self, i: int, j: int) -> str:
        return self.net.address(i, j)

    def close(self) -> None:
        """Close every proxy and end the thread (idempotent)."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.ident is not None:
            self._thread.join(self._timeout)
            if self._thread.is_alive():
                raise RuntimeError("the proxy thread did not end")

    def __enter__(self) -> ProxyThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
