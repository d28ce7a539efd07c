"""Serving block sync (node.net.sync.BlockServer): lazily, bounded and rate-limited per peer
(issue 11, item 5: 1,000 tiny GetBlocks requests that are never read pinned ~1 GB)."""

from __future__ import annotations

import asyncio

from node.net.sync import BlockServer

PEER = b"p" * 32
TIMEOUT = 5.0


class FakeNet:
    """A send queue that drains only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.reads: list[tuple[int, int]] = []
        self.penalties: list[tuple[bytes, str, int]] = []
        self.room = asyncio.Event()
        self.room.set()
        self.connected = True
        self.sleeps: list[float] = []

    def read(self, start: int, count: int) -> list[bytes]:
        self.reads.append((start, count))
        return [b"block %d" % h for h in range(start, start + count)]

    def send(self, peer: bytes, frame: bytes) -> bool:
        self.sent.append((peer, frame))
        return True

    async def wait_for_room(self, peer: bytes, below: int) -> bool:
        await self.room.wait()
        return self.connected

    def penalise(self, peer: bytes, reason: str, points: int) -> None:
        self.penalties.append((peer, reason, points))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _server(net: FakeNet, **options: float) -> BlockServer:
    return BlockServer(
        net.read,
        net.send,
        net.wait_for_room,
        net.penalise,
        room_bytes=1024,
        sleep=net.sleep,
        clock=lambda: 0.0,
        **options,  # type: ignore[arg-type]
    )


async def _until(predicate: object, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0)  # yield to the server task; no wall-clock wait
    assert predicate(), what  # type: ignore[operator]


async def test_a_flood_of_requests_is_bounded_and_penalised() -> None:
    """A peer that asks and never reads: requests beyond ``max_pending`` are dropped
    and penalised; nothing is read from the store until its send queue has room."""
    net = FakeNet()
    net.room.clear()
    server = _server(net, max_pending=4)
    for i in range(1000):
        server.on_request(PEER, 1 + i, 1)
    await asyncio.sleep(0)
    assert net.reads == [] and net.sent == []
    assert server.pending(PEER) <= 4
    assert len(net.penalties) == 996 and all(p[0] == PEER for p in net.penalties)
    await server.stop()


async def test_requests_are_served_one_chunk_at_a_time_as_the_queue_drains() -> None:
    net = FakeNet()
    server = _server(net, max_pending=8)
    for start in (1, 11, 21):
        server.on_request(PEER, start, 10)
    await _until(lambda: len(net.sent) == 3, "three answers")
    assert net.reads == [(1, 10), (11, 10), (21, 10)] and not net.penalties
    await server.stop()


async def test_serving_is_rate_limited_per_peer() -> None:
    net = FakeNet()
    server = _server(net, max_pending=8, chunks_per_second=2.0)
    for start in range(1, 6):
        server.on_request(PEER, start, 1)
    await _until(lambda: len(net.sent) == 5, "five answers")
    assert len(net.sleeps) >= 2 and all(s > 0 for s in net.sleeps)
    await server.stop()


async def test_a_peer_that_leaves_loses_its_queue() -> None:
    net = FakeNet()
    net.room.clear()
    server = _server(net, max_pending=8)
    server.on_request(PEER, 1, 1)
    server.forget(PEER)
    assert server.pending(PEER) == 0
    net.room.set()
    await asyncio.sleep(0)
    assert net.sent == []
    await server.stop()
