"""Unit tests of the fault proxies (tests/chaos/proxy.py) over real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.chaos.proxy import (
    HOST,
    TASK_PREFIX,
    Direction,
    LinkProxy,
    ProxyNet,
    ProxyThread,
    grudge_bridge,
    grudge_isolate,
    grudge_partition,
    grudge_ring,
    ring_reach,
)
from tests.support.waiting import wait_until_async

WAIT = 5.0  # generous bounds for conditions on a loaded 2-core machine


async def eventually(what: str, cond: Callable[[], bool], timeout: float = WAIT) -> None:
    """Until ``cond()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    await wait_until_async(what, cond, timeout=timeout, interval=0.005)


class Target:
    """A TCP server standing for a node: records what each connection sent,
    echoes it back (prefixed with ``tag``) when ``echo`` is set."""

    def __init__(self, *, echo: bool = True, tag: bytes = b"") -> None:
        self.echo = echo
        self.tag = tag
        self.received: list[bytearray] = []  # per connection, in accept order
        self.eofs = 0
        self.errors: list[BaseException] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> Target:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    def total(self) -> bytes:
        return b"".join(bytes(r) for r in self.received)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        self.received.append(buf)
        self._writers.append(writer)
        task = asyncio.create_task(self._serve(reader, writer, buf))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, buf: bytearray
    ) -> None:
        try:
            while data := await reader.read(65536):
                buf.extend(data)
                if self.echo:
                    writer.write(self.tag + data)
                    await writer.drain()
            self.eofs += 1
        except OSError as exc:
            self.errors.append(exc)
        finally:
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = await Target().start()
    yield t
    await t.close()


@pytest.fixture
async def sink() -> AsyncIterator[Target]:
    t = await Target(echo=False).start()
    yield t
    await t.close()


async def dial(
    proxy: LinkProxy, sndbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the proxy; ``sndbuf`` fixes the send buffer (no autotuning: a
    few MiB then fill the kernel's buffers and the sender blocks)."""
    if sndbuf is None:
        return await asyncio.open_connection(HOST, proxy.port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, proxy.port))
    return await asyncio.open_connection(sock=sock)


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), WAIT)


async def expect_reset(reader: asyncio.StreamReader) -> None:
    """The connection ends with RST (not a clean FIN) within the wait bound."""
    with pytest.raises(ConnectionResetError):
        async with asyncio.timeout(WAIT):
            while await reader.read(65536):
                pass


def proxy_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX)]


# ---------------------------------------------------------------- LinkProxy
async def test_forwards_both_ways_intact_and_half_closes(target: Target) -> None:
    """Without faults, 1 MiB goes through and back byte for byte, and the dialer's
    EOF reaches the target, whose close comes back as EOF to the dialer."""
    async with LinkProxy(target.addr) as proxy:
        reader, writer = await dial(proxy)
        payload = os.urandom(1 << 20)
        writer.write(payload)
        await writer.drain()
        assert await read_exactly(reader, len(payload)) == payload
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        await eventually("the target to see EOF", lambda: target.eofs == 1)
        writer.close()
        assert proxy.stats.up.forwarded == proxy.stats.down.forwarded == len(payload)


async def test_hold_block_holds_bytes_bounded_and_delivers_them_in_order_at_unblock(
    sink: Target,
) -> None:
    """A blocked direction (hold) delivers nothing, holds at most ``max_held`` bytes
    per connection (then TCP back-pressure stops the sender), and on unblock
    delivers everything in order, as TCP after a healed partition."""
    cap = 64 * 1024
    async with LinkProxy(sink.addr, max_held=cap) as proxy:
        _, writer = await dial(proxy, sndbuf=32 * 1024)
        writer.write(b"a")
        await eventually("the first byte at the target", lambda: sink.total() == b"a")
        proxy.block()
        payload = os.urandom(2 << 20)
        writer.write(payload)
        drain = asyncio.create_task(writer.drain())
        await eventually("the proxy to hold its cap", lambda: proxy.held(Direction.UP) == cap)
        assert sink.total() == b"a"
        assert not drain.done(), "the sender should be held back by TCP back-pressure"
        assert proxy.stats.up.peak_held == cap
        # a wide send buffer again, or the rest crawls through 32 KiB windows
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        proxy.unblock()
        await eventually("every byte at the target", lambda: len(sink.total()) == 1 + len(payload))
        assert sink.total() == b"a" + payload
        await asyncio.wait_for(drain, WAIT)
        writer.close()


async def test_a_blocked_proxy_does_not_connect_new_connections_onward(sink: Target) -> None:
    """A connection made during a block (either direction) is held locally, the
    target sees nothing (a lost SYN); at unblock it is connected and its bytes flow."""
    async with LinkProxy(sink.addr) as proxy:
        proxy.block(Direction.DOWN)
        _, writer = await dial(proxy)
        writer.write(b"hello")
        await eventually("a pending connection", lambda: proxy.pending == 1)
        assert sink.received == []
        proxy.unblock(Direction.DOWN)
        await eventually("the bytes at the target", lambda: sink.total() == b"hello")
        assert proxy.pending == 0 and proxy.stats.connected == 1
        writer.close()


async def test_one_direction_blocked_the_other_flows(target: Target) -> None:
    """Blocking DOWN (target -> dialer) lets the dialer's bytes reach the target
    while the echoes are held back; they arrive at unblock."""
    async with LinkProxy(target.addr) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"x")
        assert await read_exactly(reader, 1) == b"x"
        proxy.block(Direction.DOWN)
        writer.write(b"yz")
        await eventually("the target to get yz", lambda: target.total() == b"xyz")
        await eventually("the echo to be held", lambda: proxy.held(Direction.DOWN) == 2)
        proxy.unblock(Direction.DOWN)
        assert await read_exactly(reader, 2) == b"yz"
        writer.close()


async def test_drop_block_discards_and_resets_the_gapped_connection_at_unblock(
    target: Target,
) -> None:
    """In drop mode a blocked direction discards bytes (counted); a stream with a
    gap cannot go on, so at unblock that connection is reset; a new one works."""
    async with LinkProxy(target.addr) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"ok")
        assert await read_exactly(reader, 2) == b"ok"
        proxy.block(Direction.UP, mode="drop")
        writer.write(b"lost")
        await eventually("4 bytes dropped", lambda: proxy.stats.up.dropped == 4)
        assert target.total() == b"ok"
        proxy.unblock(Direction.UP)
        await expect_reset(reader)
        assert proxy.stats.resets == 1
        reader2, writer2 = await dial(proxy)
        writer2.write(b"again")
        assert await read_exactly(reader2, 5) == b"again"
        writer.close()
        writer2.close()


async def test_reset_after_resets_a_stalled_connection_and_a_pending_one(sink: Target) -> None:
    """With ``reset_after`` a connection whose bytes are held that long is reset,
    as a TCP retransmission timeout would, and so is one that never got through."""
    async with LinkProxy(sink.addr) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"a")
        await eventually("a at the target", lambda: sink.total() == b"a")
        proxy.block(reset_after=0.05)
        started = time.monotonic()
        writer.write(b"held")
        await expect_reset(reader)
        assert time.monotonic() - started >= 0.05
        reader2, writer2 = await dial(proxy)  # made during the block: never connected
        await expect_reset(reader2)
        assert sink.total() == b"a" and len(sink.received) == 1
        assert proxy.stats.resets == 2
        writer.close()
        writer2.close()


async def test_reset_closes_every_connection_with_rst_on_both_sides(target: Target) -> None:
    """``reset()`` ends every current connection with RST: the dialer reads
    ConnectionResetError, the target sees the connection broken."""
    async with LinkProxy(target.addr) as proxy:
        conns = [await dial(proxy) for _ in range(3)]
        for reader, writer in conns:
            writer.write(b"p")
            assert await read_exactly(reader, 1) == b"p"
        assert proxy.reset() == 3
        for reader, writer in conns:
            await expect_reset(reader)
            writer.close()
        await eventually("the target to see 3 broken connections", lambda: len(target.errors) == 3)
        await eventually("no connection left", lambda: proxy.connections == 0)


async def test_latency_with_jitter_delays_every_chunk_and_keeps_order(target: Target) -> None:
    """Latency 50 ms +- 40 ms on UP: the first echo takes at least 10 ms, and 30
    numbered chunks sent back to back come back complete and in order."""
    async with LinkProxy(target.addr, seed=3) as proxy:
        proxy.set_latency(0.05, 0.04, Direction.UP)
        reader, writer = await dial(proxy)
        started = time.monotonic()
        writer.write(b"0000")
        assert await read_exactly(reader, 4) == b"0000"
        assert time.monotonic() - started >= 0.01
        chunks = [f"{k:04d}".encode() for k in range(1, 31)]
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0)  # let the proxy read them as separate chunks
        assert await read_exactly(reader, 4 * len(chunks)) == b"".join(chunks)
        writer.close()


def test_jitter_is_seeded() -> None:
    """The same seed gives the same delays, another seed others; never negative."""

    def delays(seed: int) -> list[float]:
        proxy = LinkProxy((HOST, 9), seed=seed)
        proxy.faults[Direction.UP].latency = 0.01
        proxy.faults[Direction.UP].jitter = 0.02
        return [proxy.sample_delay(Direction.UP) for _ in range(50)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)
    assert min(delays(7)) >= 0.0 and max(delays(7)) <= 0.03


async def test_bandwidth_cap_limits_throughput(sink: Target) -> None:
    """At 400 kB/s, 100 kB take at least about 0.25 s (minus the first slice)."""
    async with LinkProxy(sink.addr) as proxy:
        proxy.set_bandwidth(400_000, Direction.UP)
        _, writer = await dial(proxy)
        payload = os.urandom(100_000)
        started = time.monotonic()
        writer.write(payload)
        await eventually("all bytes at the target", lambda: len(sink.total()) == len(payload))
        assert time.monotonic() - started >= 0.2
        assert sink.total() == payload
        writer.close()


async def test_drip_forwards_a_few_bytes_at_a_time(sink: Target) -> None:
    """A drip of 10 bytes every 20 ms delivers 100 bytes in at least 180 ms, intact."""
    async with LinkProxy(sink.addr) as proxy:
        proxy.set_drip(10, 0.02, Direction.UP)
        _, writer = await dial(proxy)
        payload = os.urandom(100)
        started = time.monotonic()
        writer.write(payload)
        await eventually("all bytes at the target", lambda: len(sink.total()) == 100)
        assert time.monotonic() - started >= 0.18
        assert sink.total() == payload
        writer.close()


async def test_a_target_that_is_down_resets_the_dialer() -> None:
    """A refused onward connection (node down) reaches the dialer as a reset."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        async with LinkProxy((HOST, port)) as proxy:
            reader, writer = await dial(proxy)
            await expect_reset(reader)
            assert proxy.stats.upstream_failures == 1
            writer.close()


async def test_close_ends_every_task_and_stops_listening(target: Target) -> None:
    """After ``close()`` no task of the proxy remains (live, pending and shaped
    connections included) and its port refuses connections."""
    proxy = LinkProxy(target.addr)
    await proxy.start()
    r1, w1 = await dial(proxy)
    w1.write(b"x")
    assert await read_exactly(r1, 1) == b"x"
    proxy.set_latency(10.0, direction=Direction.UP)  # a chunk asleep in its delay
    w1.write(b"slow")
    proxy.block(Direction.DOWN)
    _, w2 = await dial(proxy)  # a pending connection
    await eventually("one pending", lambda: proxy.pending == 1)
    assert proxy_tasks()
    await proxy.close()
    assert proxy_tasks() == []
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, proxy.port)
    w1.close()
    w2.close()


def test_bad_settings_are_refused() -> None:
    """Negative latency, a zero rate, a zero drip and an unknown block mode are errors."""
    proxy = LinkProxy((HOST, 9))
    with pytest.raises(ValueError):
        proxy.set_latency(-1.0)
    with pytest.raises(ValueError):
        proxy.set_bandwidth(0)
    with pytest.raises(ValueError):
        proxy.set_drip(0, 0.1)
    with pytest.raises(ValueError):
        proxy.block(mode="lose")  # type: ignore[arg-type]


# ---------------------------------------------------------------- shapes
def test_partition_grudge_cuts_every_pair_across_groups() -> None:
    """partition([[0, 1], [2, 3]]) loses exactly the 8 cross-group directions."""
    g = grudge_partition(4, [[0, 1], [2, 3]])
    assert g == {(a, b) for a in range(4) for b in range(4) if (a < 2) != (b < 2)}
    assert len(g) == 8


def test_partition_groups_must_cover_every_node_once() -> None:
    """Overlapping groups, a missing node, an empty group and an unknown node are errors."""
    for groups in ([[0, 1], [1, 2, 3]], [[0, 1], [2]], [[0, 1, 2, 3], []], [[0, 1], [2, 3, 4]]):
        with pytest.raises(ValueError):
            grudge_partition(4, groups)


def test_isolate_bridge_and_ring_grudges() -> None:
    """isolate cuts one node both ways; bridge keeps ``via`` linked to both sides;
    the ring lets each node of 5 see its two neighbours (a majority with itself)."""
    assert grudge_isolate(4, 2) == {(2, k) for k in (0, 1, 3)} | {(k, 2) for k in (0, 1, 3)}
    b = grudge_bridge(5, [0, 1], 2, [3, 4])
    assert (0, 3) in b and (4, 1) in b
    assert not {(0, 2), (2, 0), (2, 4), (4, 2), (0, 1), (3, 4)} & b
    with pytest.raises(ValueError):
        grudge_bridge(5, [0, 1], 2, [3])
    ring = grudge_ring(5)
    assert ring_reach(5) == 1 and ring_reach(4) == 1 and ring_reach(7) == 2
    assert {b for a, b in ring if a == 0} == {2, 3}
    for node in range(5):
        assert 5 - sum(1 for a, _ in ring if a == node) >= 3  # sees a majority
    assert grudge_ring(4) == {(0, 2), (2, 0), (1, 3), (3, 1)}


# ---------------------------------------------------------------- ProxyNet
async def start_targets(n: int) -> list[Target]:
    return [await Target(tag=f"{j}:".encode()).start() for j in range(n)]


async def test_proxynet_addresses_and_shapes_set_each_direction() -> None:
    """Node i dials j at a proxy of its own per pair; isolate blocks both directions
    of every link of the node and nothing else; heal clears everything."""
    targets = await start_targets(3)
    try:
        async with ProxyNet([t.addr for t in targets], seed=1) as net:
            addresses = {net.address(i, j) for i in range(3) for j in range(3) if i != j}
            assert len(addresses) == 6
            net.isolate(0)
            for (i, j), proxy in net.proxies.items():
                touches = 0 in (i, j)
                assert proxy.faults[Direction.UP].blocked == touches
                assert proxy.faults[Direction.DOWN].blocked == touches
            net.heal()
            assert net.grudge == frozenset()
            assert not any(p.blocked_any for p in net.proxies.values())
    finally:
        for t in targets:
            await t.close()


async def test_one_way_loses_messages_in_one_direction_over_either_dialled_link() -> None:
    """one_way(0, 1): on the link 0 dialled, 0's bytes are held and 1's answer is
    not sent; on the link 1 dialled, 1's bytes reach 0 but 0's echo is held. 1 -> 0
    flows everywhere; after heal the held bytes arrive."""
    targets = await start_targets(3)
    try:
        async with ProxyNet([t.addr for t in targets], seed=2) as net:
            r01, w01 = await asyncio.open_connection(HOST, net.proxy(0, 1).port)
            r10, w10 = await asyncio.open_connection(HOST, net.proxy(1, 0).port)
            for r, w, tag in ((r01, w01, b"1:"), (r10, w10, b"0:")):
                w.write(b"a")
                assert await read_exactly(r, 3) == tag + b"a"
            net.one_way(0, 1)
            assert net.grudge == {(0, 1)}
            w01.write(b"b")  # 0 -> 1 on 0's link: held
            w10.write(b"c")  # 1 -> 0 on 1's link: delivered, the echo 0 -> 1 held
            await eventually("node 0 to get c", lambda: targets[0].total() == b"ac")
            await eventually("b held", lambda: net.proxy(0, 1).held(Direction.UP) == 1)
            await eventually("0's echo held", lambda: net.proxy(1, 0).held(Direction.DOWN) == 3)
            assert targets[1].total() == b"a"
            net.heal()
            assert await read_exactly(r01, 3) == b"1:b"
            assert await read_exactly(r10, 3) == b"0:c"
            w01.close()
            w10.close()
    finally:
        for t in targets:
            await t.close()
    assert proxy_tasks() == []


async def test_proxynet_latency_bandwidth_drip_and_reset_apply_to_the_pair_legs() -> None:
    """Shaping a pair (a, b) sets UP of proxy (a, b) and DOWN of proxy (b, a) only;
    reset(nodes) resets only connections of links that touch those nodes."""
    targets = await start_targets(3)
    try:
        async with ProxyNet([t.addr for t in targets]) as net:
            net.latency(0.2, 0.1, pairs=[(0, 1)])
            net.bandwidth(1000, pairs=[(0, 1)])
            net.drip(3, 0.01, pairs=[(0, 1)])
            for (i, j), proxy in net.proxies.items():
                for d in Direction:
                    f = proxy.faults[d]
                    leg = ((i, j), d) in {((0, 1), Direction.UP), ((1, 0), Direction.DOWN)}
                    assert (f.latency, f.rate, f.drip_bytes) == (
                        (0.2, 1000, 3) if leg else (0.0, None, None)
                    )
            net.heal()
            conns = {
                pair: await asyncio.open_connection(HOST, net.proxy(*pair).port)
                for pair in ((0, 1), (1, 2), (2, 1))
            }
            for r, w in conns.values():
                w.write(b"z")
                assert (await read_exactly(r, 3))[-1:] == b"z"
            assert net.reset(nodes=[0]) == 1
            await expect_reset(conns[(0, 1)][0])
            assert net.proxy(1, 2).connections == 1
            for _, w in conns.values():
                w.close()
    finally:
        for t in targets:
            await t.close()


def test_proxythread_runs_the_net_for_synchronous_callers() -> None:
    """A ProxyThread serves from its own loop: calls from this thread change faults
    there and return results; close() ends the thread."""
    with socket.socket() as a, socket.socket() as b:
        a.bind((HOST, 0))
        b.bind((HOST, 0))
        targets = [a.getsockname(), b.getsockname()]
        pt = ProxyThread(targets, seed=5)
        with pt:
            assert pt.address(0, 1).startswith(f"{HOST}:")
            pt.call(lambda net: net.isolate(1))
            assert pt.call(lambda net: net.grudge) == {(0, 1), (1, 0)}
        assert not pt._thread.is_alive()
