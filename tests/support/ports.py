"""Free TCP ports of 127.0.0.1 that stay free for a test: ``HeldPorts``.

A port is held by a socket bound to it with SO_REUSEADDR and never listening:
the node's own listener (asyncio sets SO_REUSEADDR) can still bind and listen
there, while no other ``bind()`` and no outgoing connection's automatic port can
take it, whatever else runs in parallel. ``HeldPorts.any(n)`` lets the kernel
pick ``n`` distinct ports; ``HeldPorts.exactly(ports)`` holds given ports or
answers None if one of them is taken (the functional framework's testnet blocks).
"""

from __future__ import annotations

import socket

__all__ = ["HOST", "HeldPorts", "unused_port"]

HOST = "127.0.0.1"


class HeldPorts:
    """Ports held by this process until ``release()``."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self._socks = socks
        self.ports = [int(s.getsockname()[1]) for s in socks]

    @classmethod
    def any(cls, count: int) -> HeldPorts:
        """``count`` distinct ports the kernel picked."""
        socks: list[socket.socket] = []
        try:
            for _ in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((HOST, 0))
        except BaseException:
            for s in socks:
                s.close()
            raise
        return cls(socks)

    @classmethod
    def exactly(cls, ports: list[int]) -> HeldPorts | None:
        """Hold every port of ``ports``, or None (holding nothing) if any is taken.

        A plain ``bind()`` first, which fails if anything holds the port (a
        listener, another reservation, a connection); SO_REUSEADDR only after."""
        socks: list[socket.socket] = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((HOST, port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError:
            for s in socks:
                s.close()
            return None
        return cls(socks)

    def release(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()


def unused_port() -> int:
    """A port nothing listens on right now (bound, then closed): for a test that needs
    an address where no node answers."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])
