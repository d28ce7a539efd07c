"""Running the handshake over a websocket: from a fresh connection to an authenticated session.

``establish`` sends this side's hello, checks the other's (version, chain id,
genesis hash,
not ourselves, the peer we meant to dial, an allowed node key, not banned),
derives the session keys, exchanges transcript signatures as the first
encrypted frame of each direction and verifies the other's. If the other side
is the arbiter of the pair (``handshake.is_arbiter``), it also waits for its
``KEEP`` verdict; the arbiter's caller sends it (``send_keep``). Any failure
raises ``LinkError`` with the matching ``CloseCode``, which the caller counts,
logs and sends with ``refuse``; a close by the other side during the handshake
raises ``LinkError(by_remote=True)`` with the code it sent. The whole exchange
runs under one timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import nacl.signing
from aiohttp import web

from node.net.cipher import FrameDecryptError, FrameOpener, FrameSealer
from node.net.codes import CloseCode, LinkError, close_message
from node.net.handshake import (
    KEEP,
    PROTOCOL_VERSION,
    Ephemeral,
    decode_hello,
    derive_session,
    encode_hello,
    is_arbiter,
    make_hello,
    sign_transcript,
    verify_transcript,
)

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


@dataclass(slots=True)
class Session:
    """An authenticated link: who is on the other side, and the two frame ciphers."""

    peer_id: bytes
    sealer: FrameSealer
    opener: FrameOpener
    arbiter: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may be on the other side of a link."""

    chain_id: str
    allowed: Callable[[bytes], bool]
    is_banned: Callable[[bytes], bool]
    genesis_hash: bytes = bytes(32)


async def _receive_binary(ws: WebSocket) -> bytes:
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.BINARY:
        data: bytes = msg.data
        return data
    if msg.type is aiohttp.WSMsgType.CLOSE:
        code = int(msg.data) if msg.data is not None else None
        detail = msg.extra.decode(errors="replace") if isinstance(msg.extra, bytes) else msg.extra
        raise LinkError(code or CloseCode.PROTOCOL, str(detail or "closed"), by_remote=True)
    if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        code = ws.close_code
        raise LinkError(code or CloseCode.GOING_AWAY, "closed during handshake", by_remote=True)
    if msg.type is aiohttp.WSMsgType.ERROR:
        raise LinkError(CloseCode.PROTOCOL, f"websocket error during handshake: {msg.data!r}")
    raise LinkError(CloseCode.PROTOCOL, f"unexpected {msg.type.name} message during handshake")


def _check_hello_peer(
    node_key: bytes, peer_key: bytes, policy: Policy, expected: bytes | None
) -> None:
    if peer_key == node_key:
        raise LinkError(CloseCode.SELF, "connected to ourselves")
    if expected is not None and peer_key != expected:
        raise LinkError(
            CloseCode.UNEXPECTED_PEER,
            f"expected node {expected.hex()[:16]}, found {peer_key.hex()[:16]}",
        )
    if not policy.allowed(peer_key):
        raise LinkError(CloseCode.UNKNOWN_KEY, f"node key {peer_key.hex()[:16]} is not allowed")
    if policy.is_banned(peer_key):
        raise LinkError(CloseCode.BANNED, f"node {peer_key.hex()[:16]} is banned")


async def _exchange(
    ws: WebSocket,
    node_key: nacl.signing.SigningKey,
    policy: Policy,
    expected: bytes | None,
) -> Session:
    eph = Ephemeral.generate()
    local = make_hello(node_key, policy.chain_id, eph, policy.genesis_hash)
    await ws.send_bytes(encode_hello(local))
    remote = decode_hello(await _receive_binary(ws))
    if remote.version != PROTOCOL_VERSION:
        raise LinkError(
            CloseCode.VERSION,
            f"protocol version {remote.version}, expected {PROTOCOL_VERSION}",
        )
    if remote.chain_id != policy.chain_id:
        raise LinkError(
            CloseCode.WRONG_CHAIN, f"chain id {remote.chain_id!r}, expected {policy.chain_id!r}"
        )
    if remote.genesis_hash != policy.genesis_hash:
        raise LinkError(
            CloseCode.WRONG_GENESIS,
            f"genesis {remote.genesis_hash.hex()[:16]}, expected {policy.genesis_hash.hex()[:16]}",
        )
    _check_hello_peer(local.node_key, remote.node_key, policy, expected)
    keys = derive_session(local, eph, remote)
    sealer, opener = keys.sealer(), keys.opener()
    await ws.send_bytes(sealer.seal(sign_transcript(node_key, keys.transcript)))
    try:
        signature = opener.open(await _receive_binary(ws))
    except FrameDecryptError as exc:
        raise LinkError(CloseCode.BAD_SIGNATURE, "authentication frame did not decrypt") from exc
    if not verify_transcript(remote.node_key, keys.transcript, signature):
        raise LinkError(CloseCode.BAD_SIGNATURE, "bad transcript signature")
    arbiter = is_arbiter(local.node_key, remote.node_key)
    if not arbiter:
        try:
            verdict = opener.open(await _receive_binary(ws))
        except FrameDecryptError as exc:
            raise LinkError(CloseCode.BAD_FRAME, "verdict frame did not decrypt") from exc
        if verdict != KEEP:
            raise LinkError(CloseCode.PROTOCOL, "expected the arbiter's KEEP verdict")
    return Session(remote.node_key, sealer, opener, arbiter)


async def send_keep(ws: WebSocket, session: Session) -> None:
    """The arbiter's verdict that this link is the one to use (its frame 1)."""
    await ws.send_bytes(session.sealer.seal(KEEP))


async def establish(
    ws: WebSocket,
    node_key: nacl.signing.SigningKey,
    policy: Policy,
    *,
    expected: bytes | None,
    timeout: float,
) -> Session:
    """Authenticate the link on ``ws``; ``LinkError`` if it fails (see the module docstring)."""
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(ws, node_key, policy, expected)
    except TimeoutError as exc:
        raise LinkError(CloseCode.HANDSHAKE_TIMEOUT, f"no handshake within {timeout:g}s") from exc
    except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
        raise LinkError(
            CloseCode.GOING_AWAY, f"connection lost during handshake: {exc!r}", by_remote=True
        ) from exc


async def refuse(ws: WebSocket, error: LinkError, close_timeout: float) -> None:
    """Close ``ws`` with the code and reason of ``error`` (unless the other side closed it)."""
    if error.by_remote or ws.closed:
        return
    try:
        async with asyncio.timeout(close_timeout):
            await ws.close(code=error.code, message=close_message(error.reason))
    except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
        pass
