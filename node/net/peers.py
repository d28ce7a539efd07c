"""What the transport knows about each peer: its send queue, counters and public snapshot.

``PeerState`` lives as long as the transport and survives reconnections (the
counters are cumulative); ``PeerInfo`` is the immutable snapshot that
``Transport.peers()`` returns for status pages and the admin API.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from node.net.codes import CloseCode


class Direction(StrEnum):
    """Who dialed the link."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A peer's state at one instant. Times: ``*_mono`` monotonic seconds, ``*_wall`` Unix."""

    node_id: str
    connected: bool
    address: str | None
    dial_address: str | None
    direction: str | None
    connected_since_mono: float | None
    connected_since_wall: float | None
    last_seen_mono: float | None
    frames_in: int
    bytes_in: int
    frames_out: int
    bytes_out: int
    dropped: int
    queued: int
    links: int
    penalties: int
    penalty_score: int
    banned_until_mono: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class LinkHandle(Protocol):
    """What a peer's record knows of its live link (``node.net.link.Link``): kept
    as a protocol so the record does not import the link, which imports it."""

    direction: Direction
    address: str
    since_mono: float
    since_wall: float

    def retire(self) -> None: ...

    async def wait_done(self) -> None: ...

    async def close(self, code: CloseCode, reason: str) -> None: ...


class PeerState:
    """Mutable per-peer state owned by the transport."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "dial_address",
        "dropped",
        "frames_in",
        "frames_out",
        "last_seen",
        "link",
        "links",
        "node_id",
        "queue",
        "queue_byte_limit",
        "queued_bytes",
        "room",
    )

    def __init__(self, node_id: bytes, queue_limit: int, queue_byte_limit: int = 1 << 62) -> None:
        self.node_id = node_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_limit)
        self.queue_byte_limit = queue_byte_limit
        self.queued_bytes = 0
        self.room = asyncio.Event()  # set whenever a frame leaves the queue
        self.link: LinkHandle | None = None
        self.dial_address: str | None = None
        self.frames_in = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.dropped = 0
        self.links = 0
        self.last_seen: float | None = None

    def received(self, size: int) -> None:
        """Count one frame delivered from this peer."""
        self.frames_in += 1
        self.bytes_in += size
        self.last_seen = time.monotonic()

    def sent(self, size: int) -> None:
        """Count one frame written to this peer."""
        self.frames_out += 1
        self.bytes_out += size

    def offer(self, data: bytes) -> bool:
        """Queue ``data`` unless the queue is full in frames or in bytes (a frame
        always fits an empty queue); False if it did not fit (not counted here)."""
        if self.queued_bytes and self.queued_bytes + len(data) > self.queue_byte_limit:
            return False
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        self.queued_bytes += len(data)
        return True

    async def take(self) -> bytes:
        """The next frame to write (the writer's side of ``offer``)."""
        data = await self.queue.get()
        self.queued_bytes -= len(data)
        self.room.set()
        return data

    def drop_queued(self) -> int:
        """Discard the frames still waiting to be sent (the link is gone); how many."""
        dropped = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            dropped += 1
        self.queued_bytes = 0
        self.room.set()
        self.dropped += dropped
        return dropped

    def info(self, penalties: int, score: int, banned_until: float | None) -> PeerInfo:
        """The snapshot of this peer; penalty figures come from the penalty book."""
        link = self.link
        return PeerInfo(
            node_id=self.node_id.hex(),
            connected=link is not None,
            address=link.address if link is not None else None,
            dial_address=self.dial_address,
            direction=str(link.direction) if link is not None else None,
            connected_since_mono=link.since_mono if link is not None else None,
            connected_since_wall=link.since_wall if link is not None else None,
            last_seen_mono=self.last_seen,
            frames_in=self.frames_in,
            bytes_in=self.bytes_in,
            frames_out=self.frames_out,
            bytes_out=self.bytes_out,
            dropped=self.dropped,
            queued=self.queue.qsize(),
            links=self.links,
            penalties=penalties,
            penalty_score=score,
            banned_until_mono=banned_until,
        )
