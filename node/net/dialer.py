"""Keeping an outbound link to one configured peer: dial, and redial when it drops.

The dialer of a peer sleeps while the peer has a link (in either direction) or
is banned; otherwise it dials the peer's current address. After a link that
was up ends, it redials after a short jittered pause; after a failed attempt
(connection refused, handshake refused, timeout) it waits longer each time, up
to the backoff cap (``backoff``). Only the first failure of a streak is logged
above debug level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
from structlog.typing import FilteringBoundLogger

from node.net.backoff import Backoff
from node.net.codes import LinkError
from node.net.peers import PeerState

# Dial the address; return once a link that was established has ended; raise
# LinkError, OSError, aiohttp.ClientError or TimeoutError if none was established.
Connect = Callable[[str], Awaitable[None]]


class Dialer:
    """The redial loop of one peer; ``run()`` until cancelled or no longer wanted."""

    def __init__(
        self,
        peer: PeerState,
        connect: Connect,
        *,
        banned_until: Callable[[bytes], float | None],
        active: Callable[[], bool],
        backoff: Backoff,
        log: FilteringBoundLogger,
    ) -> None:
        self._peer = peer
        self._connect = connect
        self._banned_until = banned_until
        self._active = active
        self._backoff = backoff
        self._log = log

    async def _wait_until_needed(self) -> None:
        peer = self._peer
        while True:
            link = peer.link
            if link is not None:
                await link.wait_done()
                continue
            until = self._banned_until(peer.node_id)
            if until is not None:
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                continue
            return

    async def run(self) -> None:
        """Dial and redial; returns when the transport stops or the peer is removed."""
        failures = 0
        while True:
            await self._wait_until_needed()
            address = self._peer.dial_address
            if address is None or not self._active():
                return
            try:
                await self._connect(address)
            except (LinkError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                delay = self._backoff.delay(failures)
                failures += 1
                self._log_failure(exc, address, failures, delay)
            else:
                failures = 0
                delay = self._backoff.delay(0)
            if not self._active():
                return
            await asyncio.sleep(delay)

    def _log_failure(self, exc: Exception, address: str, failures: int, delay: float) -> None:
        if isinstance(exc, LinkError):
            # The handshake already logged why (and counted it if we refused).
            self._log.debug("p2p dial refused", address=address, attempt=failures)
            return
        log = self._log.warning if failures == 1 else self._log.debug
        log(
            "p2p dial failed",
            address=address,
            attempt=failures,
            error=repr(exc),
            retry_in=round(delay, 3),
        )
