"""Websocket close codes of peer links and the error that carries one.

Codes 4000-4999 are reserved by RFC 6455 for applications; every refusal and
every link-level violation has its own code so that the other side's log says
why it was dropped.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Why a peer link was closed or refused."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    PROTOCOL = 4000
    VERSION = 4001
    WRONG_CHAIN = 4002
    UNKNOWN_KEY = 4003
    BAD_SIGNATURE = 4004
    SELF = 4005
    DUPLICATE = 4006
    HANDSHAKE_TIMEOUT = 4007
    BAD_FRAME = 4008
    BANNED = 4009
    UNEXPECTED_PEER = 4010
    BUSY = 4011
    WRONG_GENESIS = 4012

    @classmethod
    def describe(cls, code: int | None) -> str:
        """A readable name for a code received from the wire (which may be any integer)."""
        if code is None:
            return "none"
        try:
            return cls(code).name.lower()
        except ValueError:
            return str(code)


class LinkError(Exception):
    """A link was refused or torn down; ``code`` says why, ``by_remote`` who decided."""

    def __init__(self, code: CloseCode | int, reason: str, *, by_remote: bool = False) -> None:
        super().__init__(reason)
        self.code = int(code)
        self.reason = reason
        self.by_remote = by_remote

    @property
    def code_name(self) -> str:
        """The close code as a readable name (``unknown_key``, ``wrong_chain``, ...)."""
        return CloseCode.describe(self.code)


def close_message(reason: str) -> bytes:
    """``reason`` cut to fit a websocket close frame (at most 123 bytes of valid UTF-8)."""
    return reason.encode()[:120].decode(errors="ignore").encode()
