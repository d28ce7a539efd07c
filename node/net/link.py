"""One authenticated, encrypted websocket connection to a peer.

A ``Link`` exists only after a successful handshake. ``run()`` sends the
arbiter's ``KEEP`` verdict if this side is the arbiter, starts the one
writer task of the link, which drains the peer's bounded send queue, seals each
frame and writes it (a slow peer backs up its own queue, never the caller);
then it reads until the link ends, opening each frame and handing the
plaintext to ``deliver`` (awaited, so a slow consumer slows this peer's reads
only). A frame that does not authenticate, an oversized frame or a text frame
is a violation: it is penalised and the link is closed. ``run()`` returns when
the link is over, with the writer task finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiohttp
from structlog.typing import FilteringBoundLogger

from node.net.cipher import FrameDecryptError
from node.net.codes import CloseCode, close_message
from node.net.peers import Direction, PeerState
from node.net.penalties import LINK_VIOLATION_POINTS
from node.net.session import Session, WebSocket, send_keep

Deliver = Callable[[bytes, bytes], Awaitable[None]]
Penalise = Callable[[bytes, str, int], None]

_WRITE_ERRORS = (ConnectionError, OSError, RuntimeError, aiohttp.ClientError)


class Link:
    """An authenticated connection; see the module docstring."""

    def __init__(
        self,
        ws: WebSocket,
        session: Session,
        peer: PeerState,
        direction: Direction,
        address: str,
        *,
        log: FilteringBoundLogger,
        deliver: Deliver,
        penalise: Penalise,
        close_timeout: float,
    ) -> None:
        self.peer_id = session.peer_id
        self.arbiter = session.arbiter
        self.peer = peer
        self.direction = direction
        self.address = address
        self.since_mono = time.monotonic()
        self.since_wall = time.time()
        self.end_reason = "open"
        self._ws = ws
        self._session = session
        self._log = log
        self._deliver = deliver
        self._penalise = penalise
        self._close_timeout = close_timeout
        self._writer: asyncio.Task[None] | None = None
        self._retired = False
        self._done = asyncio.Event()

    async def run(self) -> None:
        """Write and read until the link ends; the writer task is done when this returns.

        On the arbiter's side the ``KEEP`` verdict goes out first, before any frame.
        """
        try:
            if self._session.arbiter:
                await send_keep(self._ws, self._session)
            if not self._retired:
                self._writer = asyncio.create_task(
                    self._write_loop(), name=f"p2p-writer-{self.peer_id.hex()[:16]}"
                )
            await self._read_loop()
        except _WRITE_ERRORS as exc:
            if self.end_reason == "open":
                self.end_reason = f"write failed: {exc!r}"
        finally:
            writer = self._writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            await self._close_ws(CloseCode.GOING_AWAY, "link ended")
            self._done.set()

    async def wait_done(self) -> None:
        """Return once ``run()`` has finished."""
        await self._done.wait()

    def retire(self) -> None:
        """Stop taking frames from the peer's queue at once (a newer link takes over)."""
        self._retired = True
        if self._writer is not None:
            self._writer.cancel()

    async def close(self, code: CloseCode, reason: str) -> None:
        """Stop writing and close the websocket with ``code``; ``run()`` then returns."""
        self.retire()
        if self.end_reason == "open":
            self.end_reason = reason
        await self._close_ws(code, reason)

    async def _close_ws(self, code: CloseCode, reason: str) -> None:
        if self._ws.closed:
            return
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._ws.close(code=code, message=close_message(reason))
        except (TimeoutError, *_WRITE_ERRORS) as exc:
            self._log.debug("p2p close did not complete", error=repr(exc))

    async def _write_loop(self) -> None:
        peer = self.peer
        sealer = self._session.sealer
        ws = self._ws
        while True:
            data = await peer.take()
            try:
                await ws.send_bytes(sealer.seal(data))
            except _WRITE_ERRORS as exc:
                self.peer.dropped += 1
                if self.end_reason == "open":
                    self.end_reason = f"write failed: {exc!r}"
                await self._close_ws(CloseCode.GOING_AWAY, "write failed")
                return
            self.peer.sent(len(data))

    async def _violation(self, reason: str, code: CloseCode) -> None:
        self._log.warning("p2p link violation", reason=reason)
        self.end_reason = reason
        self._penalise(self.peer_id, reason, LINK_VIOLATION_POINTS)
        await self.close(code, reason)

    async def _read_loop(self) -> None:
        ws = self._ws
        opener = self._session.opener
        peer = self.peer
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is aiohttp.WSMsgType.BINARY:
                try:
                    data = opener.open(msg.data)
                except FrameDecryptError:
                    await self._violation("frame failed to decrypt", CloseCode.BAD_FRAME)
                    return
                peer.received(len(data))
                await self._deliver(self.peer_id, data)
            elif kind is aiohttp.WSMsgType.TEXT:
                await self._violation("text frame", CloseCode.PROTOCOL)
                return
            elif kind is aiohttp.WSMsgType.ERROR:
                self._on_error(msg.data)
                return
            elif kind is aiohttp.WSMsgType.CLOSE:
                if self.end_reason == "open":
                    self.end_reason = f"closed by peer: {CloseCode.describe(msg.data)}"
                return
            elif kind in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                if self.end_reason == "open":
                    self.end_reason = f"closed: {CloseCode.describe(ws.close_code)}"
                return

    def _on_error(self, error: object) -> None:
        if isinstance(error, aiohttp.WebSocketError) and error.code == CloseCode.MESSAGE_TOO_BIG:
            # aiohttp refused the frame from its header and closed the link (1009).
            self._log.warning("p2p link violation", reason="oversized frame")
            self.end_reason = "oversized frame"
            self._penalise(self.peer_id, "oversized frame", LINK_VIOLATION_POINTS)
        elif self.end_reason == "open":
            self.end_reason = f"websocket error: {error!r}"
