"""The peer transport: listener, dialers, one authenticated link per peer, send queues.

``Transport`` listens on ``GET <path>`` (a websocket) on its p2p address, dials
the peers given to ``add_peer`` and keeps redialing them, and runs the
handshake of ``session`` on every link, refusing unknown node keys, other
chains or genesis documents, bad signatures, ourselves and banned peers. After the handshake each
peer has at most one link:

* the node with the lower key of each pair arbitrates between links (see
  ``handshake``): it keeps the first link that completes and closes a second
  one dialed the other way as a duplicate (both nodes dialed at once), while a
  new link dialed the same way as the current one replaces it (the dialer only
  dials when it has no link, so the old one was abandoned, e.g. the peer
  restarted). It tells the other side with a ``KEEP`` frame, and the other side
  adopts a link only then, so both always use the same one;
* ``send`` never blocks and never raises: it puts the frame on the peer's
  queue, bounded in frames and in bytes (``send_queue_bytes``; a frame always
  fits an empty queue; ``wait_for_room`` lets a producer wait for it to
  drain), which the link's single writer task drains, and returns False
  (counting a drop) when the queue is full, the peer is not connected or the
  frame is over ``max_frame_bytes`` (a sender's bug, logged as a warning at the
  1st, 2nd, 4th, 8th... such frame: no message can stop its sender);
* decrypted frames go to ``on_frame(peer_id, data)`` (sync or async; awaited,
  in order per peer); ``on_peer_up``/``on_peer_down`` (sync) report when a peer
  gets its first link and loses its last;
* ``penalise`` scores misbehaviour; a peer over the threshold is disconnected
  and banned for a while (``penalties``). The transport penalises frames that
  do not decrypt, oversized frames and text frames itself.

Every task the transport creates is kept and is finished when ``stop()``
returns. Logs go through structlog, bound to this node's and the peer's id;
nothing is logged per frame above debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import aiohttp
import nacl.signing
import structlog
from aiohttp import web
from structlog.typing import FilteringBoundLogger

from node.net.addr import parse_host_port
from node.net.backoff import Backoff
from node.net.cipher import MAC_BYTES
from node.net.codes import CloseCode, LinkError
from node.net.dialer import Dialer
from node.net.handshake import KEY_BYTES
from node.net.link import Link
from node.net.peers import Direction, PeerInfo, PeerState
from node.net.penalties import DEFAULT_POINTS, PenaltyBook
from node.net.session import Policy, Session, WebSocket, establish, refuse

OnFrame = Callable[[bytes, bytes], Awaitable[None] | None]
OnPeer = Callable[[bytes], None]

DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
DEFAULT_SEND_QUEUE_BYTES = 16 * 1024 * 1024
P2P_PATH = "/p2p"

# Local refusals worth a warning: someone is misconfigured or misbehaving.
_WARN_REFUSALS = frozenset(
    {
        CloseCode.VERSION,
        CloseCode.WRONG_CHAIN,
        CloseCode.WRONG_GENESIS,
        CloseCode.UNKNOWN_KEY,
        CloseCode.BAD_SIGNATURE,
        CloseCode.UNEXPECTED_PEER,
        CloseCode.PROTOCOL,
    }
)


def _short(node_id: bytes) -> str:
    return node_id.hex()[:16]


@dataclass(slots=True)
class _Pending:
    """An inbound websocket whose handshake has not finished yet."""

    host: str
    ws: web.WebSocketResponse
    known: bool
    evicted: bool = False


class Transport:
    """The peer network of one node; see the module docstring."""

    def __init__(
        self,
        node_key: nacl.signing.SigningKey,
        chain_id: str,
        listen_host: str,
        listen_port: int,
        allowed: Callable[[bytes], bool] | AbstractSet[bytes],
        on_frame: OnFrame,
        *,
        on_peer_up: OnPeer | None = None,
        on_peer_down: OnPeer | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        send_queue_limit: int = 1024,
        send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES,
        heartbeat: float = 10.0,
        handshake_timeout: float = 2.0,
        close_timeout: float = 2.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        penalty_threshold: int = 100,
        penalty_decay_seconds: float = 60.0,
        ban_seconds: float = 600.0,
        max_pending_handshakes: int = 16,
        max_pending_per_address: int = 4,
        genesis_hash: bytes = bytes(32),
        path: str = P2P_PATH,
    ) -> None:
        if min(max_frame_bytes, send_queue_limit, max_pending_handshakes) <= 0:
            raise ValueError("frame size, send queue and pending handshake limits must be > 0")
        if send_queue_bytes <= 0:
            raise ValueError("the send queue byte limit must be > 0")
        if max_pending_per_address <= 0:
            raise ValueError("the pending handshake limit per address must be > 0")
        self._node_key = node_key
        self.node_id = bytes(node_key.verify_key)
        self.chain_id = chain_id
        self._host = listen_host
        self._port = listen_port
        # A set is consulted live, so the owner can update it (validator set changes).
        self._allowed = allowed.__contains__ if isinstance(allowed, AbstractSet) else allowed
        self._on_frame = on_frame
        self._on_peer_up = on_peer_up
        self._on_peer_down = on_peer_down
        self.max_frame_bytes = max_frame_bytes
        # aiohttp refuses a message of max_msg_size bytes or more, hence the + 1:
        # a sealed frame of exactly max_frame_bytes must pass.
        self._wire_limit = max_frame_bytes + MAC_BYTES + 1
        self._queue_limit = send_queue_limit
        self._queue_bytes = send_queue_bytes
        self._heartbeat = heartbeat
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._backoff = Backoff(backoff_base, backoff_cap, rng or random.Random())
        self._penalties = PenaltyBook(
            threshold=penalty_threshold,
            ban_seconds=ban_seconds,
            decay_seconds=penalty_decay_seconds,
        )
        self._max_pending = max_pending_handshakes
        self._max_pending_per_address = max_pending_per_address
        self._path = path
        if len(genesis_hash) != 32:
            raise ValueError("the genesis hash must be 32 bytes")
        self.genesis_hash = genesis_hash
        self._policy = Policy(chain_id, self._is_allowed, self._penalties.is_banned, genesis_hash)
        self._log: FilteringBoundLogger = structlog.get_logger(__name__).bind(
            node=_short(self.node_id)
        )
        self._peers: dict[bytes, PeerState] = {}
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._refusals: Counter[str] = Counter()
        self._oversized = 0
        self._pending: dict[int, _Pending] = {}  # unfinished inbound handshakes, oldest first
        self._pending_seq = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._client: aiohttp.ClientSession | None = None
        self._bound_port: int | None = None
        self._started = False
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (useful with ``listen_port=0``)."""
        if self._bound_port is None:
            raise RuntimeError("transport not started")
        return self._bound_port

    @property
    def address(self) -> str:
        """``host:port`` others can dial (the listen host and the bound port)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Listen, and start dialing the peers added so far."""
        if self._started:
            raise RuntimeError("transport already started")
        app = web.Application()
        app.router.add_get(self._path, self._accept)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self._close_timeout
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._started = True
        self._runner = runner
        self._site = site
        self._bound_port = int(runner.addresses[0][1])
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._handshake_timeout)
        )
        self._log.info("p2p listening", address=self.address, path=self._path)
        for peer in self._peers.values():
            if peer.dial_address is not None:
                self._start_dialer(peer)

    async def stop(self) -> None:
        """Close every link, stop dialing and listening; every task is done on return."""
        if self._stopping or not self._started:
            return
        self._stopping = True
        if self._site is not None:
            # Stop accepting first, so that no connection is half set up when
            # the runner shuts down below.
            await self._site.stop()
        links = [peer.link for peer in self._peers.values() if peer.link is not None]
        await asyncio.gather(
            *(link.close(CloseCode.GOING_AWAY, "shutting down") for link in links),
            return_exceptions=True,
        )
        dialers = list(self._dialers.values())
        self._dialers.clear()
        for task in (*dialers, *self._handlers):
            task.cancel()
        await asyncio.gather(*dialers, return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=self._close_timeout)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._log.info("p2p stopped")

    # -- peers ---------------------------------------------------------------

    def add_peer(self, node_id: bytes, address: str) -> None:
        """Dial ``node_id`` at ``address`` (``host:port``) now and after every disconnection."""
        if len(node_id) != KEY_BYTES:
            raise ValueError("node id must be a 32-byte Ed25519 public key")
        parse_host_port(address)
        if node_id == self.node_id:
            self._log.debug("p2p not dialing ourselves", address=address)
            return
        peer = self._peer(node_id)
        peer.dial_address = address
        task = self._dialers.get(node_id)
        if self._started and not self._stopping and (task is None or task.done()):
            self._start_dialer(peer)

    def dialled(self) -> list[bytes]:
        """The peers dialled (given to ``add_peer`` and not removed since), sorted."""
        return sorted(k for k, p in self._peers.items() if p.dial_address is not None)

    def remove_peer(self, node_id: bytes, reason: str) -> None:
        """Stop dialling ``node_id`` and close its link if it has one (a validator the
        chain removed): its dialer ends, and it is not dialled again."""
        peer = self._peers.get(node_id)
        if peer is None:
            return
        peer.dial_address = None
        if peer.link is not None:
            self._spawn(
                peer.link.close(CloseCode.GOING_AWAY, reason), f"p2p-drop-{_short(node_id)}"
            )

    def peers(self) -> list[PeerInfo]:
        """A snapshot of every known peer, connected or not, by node id."""
        book = self._penalties
        return [
            peer.info(book.count(node_id), book.score(node_id), book.banned_until(node_id))
            for node_id, peer in sorted(self._peers.items())
        ]

    def connected(self) -> list[bytes]:
        """The ids of the peers that have a link now, sorted."""
        return sorted(node_id for node_id, peer in self._peers.items() if peer.link is not None)

    def is_connected(self, node_id: bytes) -> bool:
        """Whether ``node_id`` has a link now."""
        peer = self._peers.get(node_id)
        return peer is not None and peer.link is not None

    def refusals(self) -> dict[str, int]:
        """How many links this side refused during the handshake, by reason."""
        return dict(sorted(self._refusals.items()))

    # -- sending -------------------------------------------------------------

    def send(self, peer_id: bytes, data: bytes) -> bool:
        """Queue one frame for ``peer_id``; False (a counted drop) if not connected,
        full, or over ``max_frame_bytes`` (the caller's bug, never the network's:
        counted in ``oversized`` and logged, never raised)."""
        peer = self._peers.get(peer_id)
        if len(data) > self.max_frame_bytes:
            self._oversize(peer_id, len(data))
            if peer is not None:
                peer.dropped += 1
            return False
        if peer is None:
            return False
        if peer.link is None:
            peer.dropped += 1
            return False
        if not peer.offer(data):
            peer.dropped += 1
            return False
        return True

    def queued_bytes(self, peer_id: bytes) -> int:
        """How many bytes wait in ``peer_id``'s send queue."""
        peer = self._peers.get(peer_id)
        return 0 if peer is None else peer.queued_bytes

    async def wait_for_room(self, peer_id: bytes, below: int) -> bool:
        """Wait until at most ``below`` bytes wait in ``peer_id``'s send queue; False
        (at once or later) if the peer is not connected."""
        peer = self._peers.get(peer_id)
        while peer is not None and peer.link is not None and not self._stopping:
            if peer.queued_bytes <= below:
                return True
            peer.room.clear()
            await peer.room.wait()
        return False

    def broadcast(self, data: bytes) -> int:
        """``send`` to every connected peer; how many queued it."""
        return sum(self.send(node_id, data) for node_id in self.connected())

    @property
    def oversized(self) -> int:
        """How many frames ``send`` refused for being over ``max_frame_bytes``."""
        return self._oversized

    def _oversize(self, peer_id: bytes, size: int) -> None:
        self._oversized += 1
        count = self._oversized
        level = self._log.warning if count & (count - 1) == 0 else self._log.debug
        level(
            "p2p frame over the limit not sent",
            peer=_short(peer_id),
            size=size,
            limit=self.max_frame_bytes,
            count=count,
        )

    # -- penalties -----------------------------------------------------------

    def penalise(self, peer_id: bytes, reason: str, points: int = DEFAULT_POINTS) -> None:
        """Count misbehaviour of ``peer_id``; over the threshold it is dropped and banned."""
        banned = self._penalties.add(peer_id, points)
        log = self._log.bind(peer=_short(peer_id))
        log.debug("p2p penalty", reason=reason, points=points)
        if not banned:
            return
        log.warning("p2p peer banned", reason=reason, penalties=self._penalties.count(peer_id))
        peer = self._peers.get(peer_id)
        if peer is not None and peer.link is not None:
            self._spawn(peer.link.close(CloseCode.BANNED, f"banned: {reason}"), "p2p-ban")

    async def disconnect(self, peer_id: bytes, reason: str) -> bool:
        """Close the link to ``peer_id`` now (it is redialled as usual); False: no link."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.link is None:
            return False
        await peer.link.close(CloseCode.GOING_AWAY, reason)
        return True

    # -- internals -----------------------------------------------------------

    def _is_allowed(self, node_id: bytes) -> bool:
        try:
            return bool(self._allowed(node_id))
        except Exception:
            self._log.exception("p2p allowed() failed", peer=_short(node_id))
            return False

    def _peer(self, node_id: bytes) -> PeerState:
        peer = self._peers.get(node_id)
        if peer is None:
            peer = self._peers[node_id] = PeerState(node_id, self._queue_limit, self._queue_bytes)
        return peer

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._track(asyncio.create_task(coro, name=name))

    def _start_dialer(self, peer: PeerState) -> None:
        dialer = Dialer(
            peer,
            lambda address: self._dial(peer.node_id, address),
            banned_until=self._penalties.banned_until,
            active=lambda: not self._stopping and peer.dial_address is not None,
            backoff=self._backoff,
            log=self._log.bind(peer=_short(peer.node_id)),
        )
        task = asyncio.create_task(dialer.run(), name=f"p2p-dialer-{_short(peer.node_id)}")
        self._dialers[peer.node_id] = task

    async def _dial(self, node_id: bytes, address: str) -> None:
        client = self._client
        if client is None or self._stopping:
            raise LinkError(CloseCode.GOING_AWAY, "transport stopping")
        async with asyncio.timeout(self._handshake_timeout):
            ws = await client.ws_connect(
                f"ws://{address}{self._path}",
                max_msg_size=self._wire_limit,
                heartbeat=self._heartbeat,
                compress=0,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._close_timeout),
            )
        try:
            session = await self._authenticate(ws, Direction.OUTBOUND, address, node_id)
            await self._run_link(ws, session, Direction.OUTBOUND, address)
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            raise web.HTTPServiceUnavailable(reason="shutting down")
        ws = web.WebSocketResponse(
            max_msg_size=self._wire_limit,
            heartbeat=self._heartbeat,
            compress=False,
            autoping=True,
            timeout=self._close_timeout,
        )
        peername = request.transport.get_extra_info("peername") if request.transport else None
        host = str(peername[0]) if peername else str(request.remote)
        address = f"{peername[0]}:{peername[1]}" if peername else str(request.remote)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await ws.prepare(request)
            self._pending_seq += 1
            key = self._pending_seq
            self._pending[key] = _Pending(host, ws, self._is_known_host(host))
            self._make_room(key)
            try:
                session = await self._authenticate(ws, Direction.INBOUND, address, None)
            except LinkError:
                return ws
            finally:
                self._pending.pop(key, None)
            await self._run_link(ws, session, Direction.INBOUND, address)
        finally:
            if task is not None:
                self._handlers.discard(task)
        return ws

    def pending_handshakes(self) -> dict[str, int]:
        """Unfinished inbound handshakes by source host."""
        return dict(sorted(Counter(p.host for p in self._pending.values()).items()))

    def _is_known_host(self, host: str) -> bool:
        """Whether ``host`` is the host of a peer we dial (configured or on-chain)."""
        for peer in self._peers.values():
            if peer.dial_address is None:
                continue
            with contextlib.suppress(ValueError):
                if parse_host_port(peer.dial_address)[0] == host:
                    return True
        return False

    def _make_room(self, newest: int) -> None:
        """Evict unfinished handshakes over the limits, oldest first: first the
        oldest of the newcomer's own host over its per-address limit, then, over the
        global limit, the oldest from an unknown host (a known one only if all are)."""
        host = self._pending[newest].host
        same = [k for k, p in self._pending.items() if p.host == host]
        for key in same[: max(0, len(same) - self._max_pending_per_address)]:
            self._evict(key)
        while len(self._pending) > self._max_pending:
            unknown = [k for k, p in self._pending.items() if not p.known and k != newest]
            others = unknown or [k for k in self._pending if k != newest]
            if not others:
                break
            self._evict(others[0])

    def _evict(self, key: int) -> None:
        entry = self._pending.pop(key)
        entry.evicted = True
        self._refusals["busy"] += 1
        count = self._refusals["busy"]
        level = self._log.info if count & (count - 1) == 0 else self._log.debug
        level("p2p unfinished handshake evicted", host=entry.host, count=count)
        error = LinkError(CloseCode.BUSY, "too many unfinished handshakes")
        self._spawn(refuse(entry.ws, error, self._close_timeout), "p2p-evict")

    async def _authenticate(
        self, ws: WebSocket, direction: Direction, address: str, expected: bytes | None
    ) -> Session:
        try:
            return await establish(
                ws,
                self._node_key,
                self._policy,
                expected=expected,
                timeout=self._handshake_timeout,
            )
        except LinkError as exc:
            log = self._log.bind(direction=str(direction), address=address)
            if exc.by_remote:
                quiet = exc.code in (CloseCode.DUPLICATE, CloseCode.GOING_AWAY)
                level = log.debug if quiet else log.info
                level("p2p handshake refused by peer", code=exc.code_name, reason=exc.reason)
            else:
                self._refusals[exc.code_name] += 1
                count = self._refusals[exc.code_name]
                # Loud for the 1st, 2nd, 4th, 8th... refusal of a kind: a misconfigured
                # or hostile dialer cannot flood the log.
                if count & (count - 1) == 0:
                    level = log.warning if exc.code in _WARN_REFUSALS else log.info
                else:
                    level = log.debug
                level("p2p handshake refused", code=exc.code_name, reason=exc.reason, count=count)
            await refuse(ws, exc, self._close_timeout)
            raise

    async def _run_link(
        self, ws: WebSocket, session: Session, direction: Direction, address: str
    ) -> None:
        peer = self._peer(session.peer_id)
        log = self._log.bind(
            peer=_short(session.peer_id), direction=str(direction), address=address
        )
        link = Link(
            ws,
            session,
            peer,
            direction,
            address,
            log=log,
            deliver=self._deliver,
            penalise=self.penalise,
            close_timeout=self._close_timeout,
        )
        refusal = self._admit(link, log)
        if refusal is not None:
            code, reason = refusal
            log.info("p2p link dropped", code=CloseCode.describe(code), reason=reason)
            await link.close(code, reason)
            return
        try:
            await link.run()
        finally:
            self._release(link, log)

    def _admit(self, link: Link, log: FilteringBoundLogger) -> tuple[CloseCode, str] | None:
        """Make ``link`` its peer's link, or say why not (synchronous: no races)."""
        if self._stopping:
            return CloseCode.GOING_AWAY, "shutting down"
        if self._penalties.is_banned(link.peer_id):
            return CloseCode.BANNED, "banned"
        peer = link.peer
        old = peer.link
        # The arbiter keeps its current link unless the new one was dialed the
        # same way (the dialer abandoned the old one); the other side takes
        # whatever link the arbiter kept.
        if old is not None and link.arbiter and old.direction != link.direction:
            return CloseCode.DUPLICATE, f"keeping the existing {old.direction} link"
        peer.link = link
        peer.links += 1
        if old is not None:
            old.retire()
            self._spawn(old.close(CloseCode.DUPLICATE, "replaced"), "p2p-replace")
            log.info("p2p link replaced", old_direction=str(old.direction))
            return None
        log.info("p2p peer up")
        self._notify(self._on_peer_up, link.peer_id)
        return None

    def _release(self, link: Link, log: FilteringBoundLogger) -> None:
        peer = link.peer
        if peer.link is not link:
            return
        peer.link = None
        dropped = peer.drop_queued()
        log.info("p2p peer down", reason=link.end_reason, dropped=dropped)
        self._notify(self._on_peer_down, link.peer_id)

    def _notify(self, callback: OnPeer | None, peer_id: bytes) -> None:
        if callback is None:
            return
        try:
            callback(peer_id)
        except Exception:
            self._log.exception("p2p peer callback failed", peer=_short(peer_id))

    async def _deliver(self, peer_id: bytes, data: bytes) -> None:
        try:
            result = self._on_frame(peer_id, data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("p2p on_frame failed", peer=_short(peer_id))
