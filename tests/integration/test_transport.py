"""Integration tests of the peer transport: real transports and raw clients on loopback.

Every transport listens on 127.0.0.1 port 0; conditions are awaited with
``wait_until`` and a deadline, never with a fixed sleep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import nacl.signing
import pytest
import structlog

from node.net import CloseCode, Direction, PeerInfo, Transport
from node.net.session import Policy, Session, establish, send_keep
from tests.support.waiting import wait_until_async

CHAIN = "hygeia-test"
HOST = "127.0.0.1"
TIMEOUT = 10.0


async def wait_until(
    predicate: Callable[[], bool], timeout: float = TIMEOUT, what: str = ""
) -> None:
    """``tests.support.waiting.wait_until_async`` for a plain predicate."""
    await wait_until_async(what or "the condition", predicate, timeout=timeout, interval=0.01)


class Node:
    """A transport plus what its callbacks saw."""

    def __init__(self, cluster: Cluster, key: nacl.signing.SigningKey, **options: Any) -> None:
        self.key = key
        self.id = bytes(key.verify_key)
        self.frames: list[tuple[bytes, bytes]] = []
        self.ups: list[bytes] = []
        self.downs: list[bytes] = []
        settings: dict[str, Any] = {
            "heartbeat": 2.0,
            "handshake_timeout": 2.0,
            "close_timeout": 1.0,
            "backoff_base": 0.05,
            "backoff_cap": 0.4,
            "rng": random.Random(len(cluster.nodes)),
        }
        settings.update(options)
        chain = settings.pop("chain_id", CHAIN)
        port = settings.pop("port", 0)
        allowed = settings.pop("allowed", cluster.allowed.__contains__)
        on_frame = settings.pop("on_frame", self._record)
        self.transport = Transport(
            key,
            chain,
            HOST,
            port,
            allowed,
            on_frame,
            on_peer_up=self.ups.append,
            on_peer_down=self.downs.append,
            **settings,
        )

    def _record(self, peer_id: bytes, data: bytes) -> None:
        self.frames.append((peer_id, data))

    def received_from(self, peer: Node) -> list[bytes]:
        return [data for sender, data in self.frames if sender == peer.id]

    def info(self, peer: Node | bytes) -> PeerInfo:
        peer_id = peer.id if isinstance(peer, Node) else peer
        (info,) = [i for i in self.transport.peers() if i.node_id == peer_id.hex()]
        return info

    @property
    def address(self) -> str:
        return self.transport.address


class Cluster:
    """Creates nodes, remembers the allowed keys, stops everything at the end."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.allowed: set[bytes] = set()
        self.sessions: list[aiohttp.ClientSession] = []

    async def node(
        self, key: nacl.signing.SigningKey | None = None, *, allow: bool = True, **options: Any
    ) -> Node:
        key = key or nacl.signing.SigningKey.generate()
        if allow:
            self.allowed.add(bytes(key.verify_key))
        node = Node(self, key, **options)
        self.nodes.append(node)
        await node.transport.start()
        return node

    async def client(self) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        self.sessions.append(session)
        return session

    async def close(self) -> None:
        for node in self.nodes:
            await node.transport.stop()
        for session in self.sessions:
            await session.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        await c.close()


def link(a: Node, b: Node) -> None:
    """Both sides dial each other, as validators do."""
    a.transport.add_peer(b.id, b.address)
    b.transport.add_peer(a.id, a.address)


def linked(a: Node, b: Node) -> bool:
    return a.transport.is_connected(b.id) and b.transport.is_connected(a.id)


async def raw_handshake(
    cluster: Cluster,
    target: Node,
    key: nacl.signing.SigningKey,
    *,
    max_msg_size: int = 64 * 1024 * 1024,
) -> tuple[aiohttp.ClientWebSocketResponse, Session]:
    """A bare websocket client that completes a valid handshake with ``target``."""
    http = await cluster.client()
    ws = await http.ws_connect(f"ws://{target.address}/p2p", max_msg_size=max_msg_size)
    policy = Policy(CHAIN, lambda _key: True, lambda _key: False)
    session = await establish(ws, key, policy, expected=target.id, timeout=2.0)
    if session.arbiter:
        await send_keep(ws, session)
    return ws, session


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes the link; its close code."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return int(msg.data)
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.close_code


async def assert_exchange(a: Node, b: Node, tag: bytes) -> None:
    """Frames still flow both ways between ``a`` and ``b``."""
    assert a.transport.send(b.id, b"ping " + tag)
    assert b.transport.send(a.id, b"pong " + tag)
    await wait_until(lambda: b"ping " + tag in b.received_from(a), what="ping")
    await wait_until(lambda: b"pong " + tag in a.received_from(b), what="pong")


# -- connecting and exchanging ------------------------------------------------


async def test_two_transports_exchange_frames_both_ways(cluster: Cluster) -> None:
    a = await cluster.node()
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")

    sent_ab = [f"a->b {i}".encode() for i in range(50)]
    sent_ba = [f"b->a {i}".encode() * (i + 1) for i in range(50)]
    for data in sent_ab:
        assert a.transport.send(b.id, data)
    for data in sent_ba:
        assert b.transport.send(a.id, data)
    await wait_until(lambda: len(b.received_from(a)) == 50, what="frames at b")
    await wait_until(lambda: len(a.received_from(b)) == 50, what="frames at a")
    assert b.received_from(a) == sent_ab  # in order
    assert a.received_from(b) == sent_ba

    # Both dialed, yet both use one and the same link, from the first frame on.
    assert {a.info(b).direction, b.info(a).direction} == {Direction.INBOUND, Direction.OUTBOUND}
    assert a.info(b).links == 1 and b.info(a).links == 1
    assert a.ups == [b.id] and b.ups == [a.id] and not a.downs and not b.downs
    info = a.info(b)
    assert info.connected and info.frames_out == 50 and info.frames_in == 50
    assert info.bytes_out == sum(map(len, sent_ab))
    assert info.bytes_in == sum(map(len, sent_ba))
    assert info.connected_since_mono is not None and info.connected_since_wall is not None
    assert info.last_seen_mono is not None and info.penalties == 0
    assert info.to_dict()["node_id"] == b.id.hex()


async def test_four_transports_full_mesh_broadcast(cluster: Cluster) -> None:
    nodes = [await cluster.node() for _ in range(4)]
    for i, x in enumerate(nodes):
        for y in nodes[i + 1 :]:
            link(x, y)
    await wait_until(
        lambda: all(len(n.transport.connected()) == 3 for n in nodes), what="full mesh"
    )
    for n in nodes:
        assert n.transport.broadcast(b"hello from " + n.id) == 3
    for n in nodes:
        others = [m for m in nodes if m is not n]
        await wait_until(
            lambda n=n, others=others: all(  # type: ignore[misc]
                b"hello from " + m.id in n.received_from(m) for m in others
            ),
            what="broadcasts from the three others",
        )
    assert all(n.transport.refusals().get("unknown_key", 0) == 0 for n in nodes)


# -- refusals -------------------------------------------------------------------


async def test_unknown_key_is_refused_logged_and_counted(cluster: Cluster) -> None:
    a = await cluster.node()
    stranger = await cluster.node(allow=False, allowed=lambda _key: True)
    with structlog.testing.capture_logs() as logs:
        stranger.transport.add_peer(a.id, a.address)
        await wait_until(
            lambda: a.transport.refusals().get("unknown_key", 0) >= 2,
            what="repeated refusals of the unknown key",
        )
    assert not a.transport.connected() and not stranger.transport.connected()
    assert not a.ups and not stranger.ups
    refused = [
        e for e in logs if e["event"] == "p2p handshake refused" and e.get("code") == "unknown_key"
    ]
    assert refused and refused[0]["log_level"] == "warning"
    assert stranger.id.hex()[:16] in refused[0]["reason"]


async def test_wrong_chain_id_is_refused(cluster: Cluster) -> None:
    a = await cluster.node()
    other = await cluster.node(chain_id="another-chain")
    other.transport.add_peer(a.id, a.address)
    await wait_until(
        lambda: a.transport.refusals().get("wrong_chain", 0) >= 1, what="wrong chain refusal"
    )
    assert not a.transport.connected() and not other.transport.connected()


async def test_dialing_an_address_that_answers_with_another_key_is_refused(
    cluster: Cluster,
) -> None:
    a = await cluster.node()
    b = await cluster.node()
    c_id = bytes(nacl.signing.SigningKey.generate().verify_key)
    cluster.allowed.add(c_id)
    a.transport.add_peer(c_id, b.address)  # b answers there, not c
    await wait_until(lambda: a.transport.refusals().get("unexpected_peer", 0) >= 1, what="refusal")
    assert not a.transport.is_connected(b.id)


async def test_self_connection_is_refused(cluster: Cluster) -> None:
    a = await cluster.node()
    a.transport.add_peer(a.id, a.address)  # ignored outright
    assert a.transport.peers() == []
    alias = bytes(nacl.signing.SigningKey.generate().verify_key)
    cluster.allowed.add(alias)
    a.transport.add_peer(alias, a.address)  # our own address under another id
    await wait_until(lambda: a.transport.refusals().get("self", 0) >= 1, what="self refusal")
    assert not a.transport.connected()


async def test_garbage_before_the_handshake_is_refused(cluster: Cluster) -> None:
    a = await cluster.node()
    session = await cluster.client()
    ws = await session.ws_connect(f"ws://{a.address}/p2p")
    await ws.receive()  # a's hello
    await ws.send_bytes(b"\xff" * 100)
    assert await close_code(ws) == CloseCode.PROTOCOL
    assert a.transport.refusals()["protocol"] == 1


async def test_silent_client_times_out_in_handshake(cluster: Cluster) -> None:
    a = await cluster.node(handshake_timeout=0.3)
    session = await cluster.client()
    ws = await session.ws_connect(f"ws://{a.address}/p2p")
    assert await close_code(ws) == CloseCode.HANDSHAKE_TIMEOUT
    assert a.transport.refusals()["handshake_timeout"] == 1


# -- bad frames -----------------------------------------------------------------


async def test_tampered_frame_closes_only_that_link(cluster: Cluster) -> None:
    a = await cluster.node()
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    rogue_key = nacl.signing.SigningKey.generate()
    rogue_id = bytes(rogue_key.verify_key)
    cluster.allowed.add(rogue_id)

    ws, session = await raw_handshake(cluster, a, rogue_key)
    await ws.send_bytes(session.sealer.seal(b"a good frame"))
    await wait_until(lambda: (rogue_id, b"a good frame") in a.frames, what="good frame")
    tampered = bytearray(session.sealer.seal(b"a frame altered in flight"))
    tampered[-1] ^= 0x01
    await ws.send_bytes(bytes(tampered))

    assert await close_code(ws) == CloseCode.BAD_FRAME
    await wait_until(lambda: not a.transport.is_connected(rogue_id), what="rogue link down")
    rogue = a.info(rogue_id)
    assert rogue.penalties == 1 and rogue.frames_in == 1
    assert a.downs == [rogue_id]
    # The other link never noticed.
    assert a.transport.is_connected(b.id) and a.info(b).penalties == 0
    await assert_exchange(a, b, b"after tampering")


async def test_garbage_ciphertext_after_handshake_closes_the_link(cluster: Cluster) -> None:
    a = await cluster.node()
    rogue_key = nacl.signing.SigningKey.generate()
    cluster.allowed.add(bytes(rogue_key.verify_key))
    ws, _session = await raw_handshake(cluster, a, rogue_key)
    await ws.send_bytes(b"\x00" * 5)  # shorter than a MAC
    assert await close_code(ws) == CloseCode.BAD_FRAME
    ws2, _session2 = await raw_handshake(cluster, a, rogue_key)
    await ws2.send_str("text is not a frame")
    assert await close_code(ws2) == CloseCode.PROTOCOL
    assert a.info(bytes(rogue_key.verify_key)).penalties == 2


async def test_oversized_frame_is_refused_and_counted(cluster: Cluster) -> None:
    a = await cluster.node(max_frame_bytes=1024)
    b = await cluster.node(max_frame_bytes=1024)
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    # a frame over the limit is the sender's bug: a counted drop, never an exception
    # (it would stop whatever task sent it: the consensus driver, gossip)
    dropped = a.info(b).dropped
    assert not a.transport.send(b.id, bytes(1025))
    assert a.transport.oversized == 1 and a.info(b).dropped == dropped + 1
    assert a.transport.send(b.id, bytes(1024))  # exactly the limit is fine
    await wait_until(lambda: bytes(1024) in b.received_from(a), what="frame at the limit")

    rogue_key = nacl.signing.SigningKey.generate()
    rogue_id = bytes(rogue_key.verify_key)
    cluster.allowed.add(rogue_id)
    ws, session = await raw_handshake(cluster, a, rogue_key)
    await ws.send_bytes(session.sealer.seal(bytes(4096)))
    assert await close_code(ws) == CloseCode.MESSAGE_TOO_BIG
    await wait_until(lambda: not a.transport.is_connected(rogue_id), what="rogue link down")
    assert a.info(rogue_id).penalties == 1
    assert not any(sender == rogue_id for sender, _ in a.frames)
    await assert_exchange(a, b, b"after oversize")


async def test_heartbeat_drops_a_peer_that_stopped_answering(cluster: Cluster) -> None:
    a = await cluster.node(heartbeat=0.2)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    mute_key = nacl.signing.SigningKey.generate()
    mute_id = bytes(mute_key.verify_key)
    cluster.allowed.add(mute_id)
    ws, _session = await raw_handshake(cluster, a, mute_key)  # and then never reads again
    await wait_until(lambda: a.transport.is_connected(mute_id), what="mute peer up")
    await wait_until(lambda: not a.transport.is_connected(mute_id), what="heartbeat timeout")
    assert a.downs == [mute_id] and a.info(mute_id).penalties == 0
    assert a.transport.is_connected(b.id)
    await ws.close()


async def test_start_on_a_busy_port_fails_cleanly(cluster: Cluster) -> None:
    a = await cluster.node()
    clash = Node(cluster, nacl.signing.SigningKey.generate(), port=a.transport.port)
    with pytest.raises(OSError):
        await clash.transport.start()
    await clash.transport.stop()  # a no-op: it never started
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a still serving")


# -- penalties and bans -----------------------------------------------------------


async def test_peer_over_the_penalty_threshold_is_dropped_and_banned(cluster: Cluster) -> None:
    a = await cluster.node(penalty_threshold=3, ban_seconds=60)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    a.transport.penalise(b.id, "malformed message")
    a.transport.penalise(b.id, "malformed message")
    assert a.transport.is_connected(b.id)
    a.transport.penalise(b.id, "malformed message")
    await wait_until(lambda: not a.transport.is_connected(b.id), what="b dropped")
    info = a.info(b)
    assert info.penalties == 3 and info.banned_until_mono is not None
    # b keeps redialing; a refuses it while the ban lasts.
    await wait_until(lambda: a.transport.refusals().get("banned", 0) >= 1, what="ban refusal")
    assert not a.transport.is_connected(b.id)


async def test_banned_peer_is_accepted_again_after_the_ban(cluster: Cluster) -> None:
    a = await cluster.node(penalty_threshold=1, ban_seconds=0.5)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    a.transport.penalise(b.id, "garbage")
    await wait_until(lambda: not a.transport.is_connected(b.id), what="b dropped")
    await wait_until(lambda: linked(a, b), what="reconnected after the ban")
    assert a.info(b).banned_until_mono is None


# -- reconnection ---------------------------------------------------------------


async def test_dialer_reconnects_after_the_remote_restarts(cluster: Cluster) -> None:
    a = await cluster.node()
    b = await cluster.node()
    a.transport.add_peer(b.id, b.address)  # only a dials
    await wait_until(lambda: linked(a, b), what="a and b connected")
    await assert_exchange(a, b, b"before restart")

    port = b.transport.port
    await b.transport.stop()
    await wait_until(lambda: not a.transport.is_connected(b.id), what="a sees b down")
    assert a.downs == [b.id]
    assert not a.transport.send(b.id, b"into the void")
    # a keeps dialing a closed port for a while (backoff), then b comes back.
    await wait_until(lambda: a.info(b).links == 1 and not a.info(b).connected, what="down")
    b2 = await cluster.node(b.key, port=port)
    await wait_until(lambda: linked(a, b2), what="a reconnected to the restarted b")
    assert a.info(b2).links == 2 and a.ups == [b.id, b.id]
    await assert_exchange(a, b2, b"after restart")


async def test_operator_disconnect_closes_the_link_which_is_redialled(cluster: Cluster) -> None:
    """``disconnect`` closes a live link (True) and the peer is dialled again as usual; a
    peer with no link, or an unknown one, answers False."""
    a = await cluster.node()
    b = await cluster.node()
    a.transport.add_peer(b.id, b.address)  # only a dials
    await wait_until(lambda: linked(a, b), what="a and b connected")
    assert await a.transport.disconnect(b.id, "disconnected by the operator")
    await wait_until(lambda: a.info(b).links == 2 and linked(a, b), what="a redialled b")
    await assert_exchange(a, b, b"after the disconnect")
    assert not await a.transport.disconnect(b"\x01" * 32, "unknown peer")


# -- send queue -------------------------------------------------------------------


async def test_full_send_queue_drops_instead_of_blocking(cluster: Cluster) -> None:
    a = await cluster.node(send_queue_limit=4)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    # No await between the sends: the writer cannot run, the queue fills up.
    results = [a.transport.send(b.id, f"frame {i}".encode()) for i in range(10)]
    assert results == [True] * 4 + [False] * 6
    assert a.info(b).dropped == 6 and a.info(b).queued == 4
    await wait_until(lambda: len(b.received_from(a)) == 4, what="the queued frames")
    assert b.received_from(a) == [f"frame {i}".encode() for i in range(4)]
    unknown = bytes(32)
    assert not a.transport.send(unknown, b"nobody")


async def test_slow_peer_fills_its_own_queue_only(cluster: Cluster) -> None:
    gate = asyncio.Event()

    async def stuck(_peer: bytes, _data: bytes) -> None:
        await gate.wait()

    a = await cluster.node(send_queue_limit=2)
    slow = await cluster.node(on_frame=stuck)
    fast = await cluster.node()
    link(a, slow)
    link(a, fast)
    await wait_until(lambda: linked(a, slow) and linked(a, fast), what="connected")

    chunk = bytes(256 * 1024)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while a.transport.send(slow.id, chunk):  # until socket buffers and queue are full
        assert loop.time() < deadline, "the slow peer never backed up"
        await asyncio.sleep(0.001)
    assert a.info(slow).dropped >= 1
    await assert_exchange(a, fast, b"while the slow peer is stuck")
    gate.set()


# -- shutdown -----------------------------------------------------------------------


async def test_stop_leaves_no_pending_tasks(cluster: Cluster) -> None:
    nodes = [await cluster.node() for _ in range(3)]
    for i, x in enumerate(nodes):
        for y in nodes[i + 1 :]:
            link(x, y)
    await wait_until(lambda: all(len(n.transport.connected()) == 2 for n in nodes), what="mesh")
    # A dialer in backoff towards a dead address, and a client stuck mid-handshake.
    ghost = bytes(nacl.signing.SigningKey.generate().verify_key)
    cluster.allowed.add(ghost)
    nodes[0].transport.add_peer(ghost, "127.0.0.1:1")
    session = await cluster.client()
    ws = await session.ws_connect(f"ws://{nodes[1].address}/p2p")
    for n in nodes:
        assert n.transport.send(nodes[0].id, b"last words") or n is nodes[0]

    for n in nodes:
        await n.transport.stop()
    await ws.close()
    await session.close()
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leftover == []
    assert all(not n.transport.connected() for n in nodes)
    assert all(len(n.downs) == 2 for n in nodes)


# -- unfinished handshakes (issue 11, item 3) -----------------------------------


async def _silent(
    cluster: Cluster, target: Node, local_host: str = HOST
) -> aiohttp.ClientWebSocketResponse:
    """A websocket to ``target`` that reads its hello and never answers."""
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0))
    http = aiohttp.ClientSession(connector=connector)
    cluster.sessions.append(http)
    ws = await http.ws_connect(f"ws://{target.address}/p2p")
    msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.BINARY  # the hello: the handshake is pending
    return ws


async def test_silent_websockets_cannot_keep_a_validator_out(cluster: Cluster) -> None:
    """More silent, upgraded websockets than the pending limit do not lock out a
    validator: the oldest unauthenticated ones are evicted, not the newcomer refused."""
    a = await cluster.node(handshake_timeout=30.0, max_pending_per_address=64)
    silent = [await _silent(cluster, a) for _ in range(17)]
    b = await cluster.node()
    b.transport.add_peer(a.id, a.address)  # only b dials: a is the one under attack
    await wait_until(lambda: linked(a, b), timeout=5.0, what="b linked despite the flood")
    await assert_exchange(a, b, b"after-flood")
    assert a.transport.refusals().get("busy", 0) >= 1
    del silent


async def test_unfinished_handshakes_are_bounded_per_source_address(cluster: Cluster) -> None:
    """One address holds at most ``max_pending_per_address`` unfinished handshakes:
    a newer one from it evicts its oldest, and other addresses keep theirs."""
    a = await cluster.node(handshake_timeout=30.0, max_pending_per_address=2)
    other = await _silent(cluster, a, "127.0.0.3")
    first = await _silent(cluster, a, "127.0.0.2")
    rest = [await _silent(cluster, a, "127.0.0.2") for _ in range(2)]
    assert await close_code(first) == CloseCode.BUSY
    await wait_until(lambda: a.transport.pending_handshakes() == {"127.0.0.2": 2, "127.0.0.3": 1})
    assert not other.closed and not any(ws.closed for ws in rest)


async def test_known_addresses_are_evicted_last(cluster: Cluster) -> None:
    """When the pending handshakes are full, unknown addresses make room first: a
    flood from elsewhere does not evict a handshake from a configured peer's host."""
    a = await cluster.node(
        handshake_timeout=30.0, max_pending_handshakes=4, max_pending_per_address=8
    )
    b = await cluster.node()
    a.transport.add_peer(b.id, f"127.0.0.5:{b.transport.port}")  # 127.0.0.5 is known
    known = await _silent(cluster, a, "127.0.0.5")
    flood = [await _silent(cluster, a, "127.0.0.6") for _ in range(6)]
    await wait_until(lambda: a.transport.pending_handshakes().get("127.0.0.6") == 3)
    assert a.transport.pending_handshakes().get("127.0.0.5") == 1
    assert not known.closed and sum(ws.closed for ws in flood) <= 3


def test_default_handshake_timeout_is_short() -> None:
    """The pre-authentication timeout is short (an unfinished handshake holds a slot)."""
    import inspect

    default = inspect.signature(Transport).parameters["handshake_timeout"].default
    assert default <= 2.0


# -- genesis hash in the handshake (issue 11, item 2b) --------------------------


async def test_peer_with_another_genesis_is_refused(cluster: Cluster) -> None:
    """Same chain id, another genesis document: refused with WRONG_GENESIS, both ways."""
    a = await cluster.node(genesis_hash=b"\x01" * 32)
    b = await cluster.node(genesis_hash=b"\x02" * 32)
    b.transport.add_peer(a.id, a.address)
    await wait_until(lambda: a.transport.refusals().get("wrong_genesis", 0) >= 1)
    await wait_until(lambda: b.transport.refusals().get("wrong_genesis", 0) >= 1)
    assert not a.transport.is_connected(b.id) and not b.transport.is_connected(a.id)
    c = await cluster.node(genesis_hash=b"\x01" * 32)
    c.transport.add_peer(a.id, a.address)
    await wait_until(lambda: linked(a, c), what="same genesis links")


# -- send queues bounded in bytes (issue 11, item 5) ----------------------------


async def test_send_queue_is_bounded_in_bytes(cluster: Cluster) -> None:
    """Many small frames or a few big ones: the queue holds at most
    ``send_queue_bytes`` (one frame is always accepted into an empty queue)."""
    a = await cluster.node(send_queue_bytes=10_000)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    results = [a.transport.send(b.id, bytes(3_000)) for _ in range(5)]
    assert results == [True] * 3 + [False] * 2
    assert a.transport.queued_bytes(b.id) == 9_000
    await wait_until(lambda: len(b.received_from(a)) == 3, what="the queued frames")
    assert a.transport.queued_bytes(b.id) == 0
    big = [a.transport.send(b.id, bytes(50_000)) for _ in range(2)]
    assert big == [True, False]


async def test_wait_for_room_returns_once_the_queue_drains(cluster: Cluster) -> None:
    a = await cluster.node(send_queue_bytes=10_000)
    b = await cluster.node()
    link(a, b)
    await wait_until(lambda: linked(a, b), what="a and b connected")
    assert a.transport.send(b.id, bytes(9_000))
    async with asyncio.timeout(TIMEOUT):
        assert await a.transport.wait_for_room(b.id, 5_000)
    assert a.transport.queued_bytes(b.id) <= 5_000
    async with asyncio.timeout(TIMEOUT):
        assert not await a.transport.wait_for_room(bytes(32), 1)  # not connected
