"""The node's HTTP listeners against hostile clients (issue 11, item 6): connection
caps per listener and per source address, the request-head timeout (a client
that sends nothing, or one header at a time), the idle keep-alive timeout and
the body timeout.

A 4-validator testnet with only node 0 running; its ``[api]`` limits are set
small for each test. Clients are raw sockets (several source addresses of
127.0.0.0/8), so that nothing is pooled, retried or completed behind the test's
back. Every wait has a deadline; none is a fixed sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import aiohttp

from tests.integration.cluster import HOST, Cluster, get_json, wait_until

DEADLINE = 10.0  # how long any single wait for the node may take


def limit_api(c: Cluster, **keys: Any) -> None:
    home = c.homes[0]
    home.cfg = dataclasses.replace(home.cfg, api=dataclasses.replace(home.cfg.api, **keys))


async def connect(
    port: int, source: str = HOST
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = DEADLINE) -> bytes:
    """Everything until the node closes the connection (fails after ``timeout``)."""
    return await asyncio.wait_for(reader.read(), timeout)


def parse_answer(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


async def test_connection_caps_per_source_and_per_listener(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Beyond ``max_connections_per_source`` from one address, or ``max_connections``
    in all, a new connection is answered 503 ``too-many-connections`` and closed at
    once; the admin API and other sources are not affected; a closed connection
    frees its place."""
    c = cluster
    limit_api(c, max_connections=6, max_connections_per_source=3)
    await c.start(0)
    port = c.homes[0].api
    held = [await connect(port, "127.0.0.1") for _ in range(3)]
    reader, writer = await connect(port, "127.0.0.1")
    status, body = parse_answer(await read_to_eof(reader))
    writer.close()
    assert status == 503 and body["error"]["code"] == "too-many-connections", body
    assert "address" in body["error"]["message"]

    held += [await connect(port, "127.0.0.2") for _ in range(3)]  # 6: the listener is full
    reader, writer = await connect(port, "127.0.0.3")
    status, body = parse_answer(await read_to_eof(reader))
    writer.close()
    assert status == 503 and body["error"]["code"] == "too-many-connections", body
    assert "listener" in body["error"]["message"]

    admin = c.homes[0]
    status, st = await get_json(http, f"{admin.admin_url}/status", admin.token)
    assert status == 200 and st["chain_id"] == c.chain_id

    held.pop()[1].close()  # one place frees up

    async def fresh_request() -> int:
        reader, writer = await connect(port, "127.0.0.3")
        writer.write(b"GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _ = parse_answer(await read_to_eof(reader))
        writer.close()
        return status

    await wait_until("a free place on the listener", fresh_request, lambda s: s == 200)
    for _, w in held:
        w.close()


async def test_idle_and_slow_request_heads_are_cut_off(
    cluster: Cluster,
) -> None:
    """A connection that sends nothing, or drips its request head a header at a time,
    is closed within ``read_timeout_ms`` (it stayed open 129 s before); one that
    finished a request is closed after ``keepalive_timeout_ms`` of idleness."""
    c = cluster
    limit_api(c, read_timeout_ms=300, keepalive_timeout_ms=600)
    await c.start(0)
    port = c.homes[0].api
    loop = asyncio.get_running_loop()

    reader, writer = await connect(port)  # silent
    start = loop.time()
    assert await read_to_eof(reader) == b""
    assert loop.time() - start < 5, "a silent connection was not closed"
    writer.close()

    reader, writer = await connect(port)  # one header line at a time, forever
    writer.write(b"GET /v1/info HTTP/1.1\r\n")
    start = loop.time()
    closed = False
    for n in range(200):
        writer.write(f"X-Drip-{n}: {n}\r\n".encode())
        try:
            closed = await asyncio.wait_for(reader.read(), 0.05) == b""
        except TimeoutError:
            continue
        if closed:
            break
    assert closed, "a dripping request head was not cut off"
    assert loop.time() - start < 5
    writer.close()

    reader, writer = await connect(port)  # keep-alive: one request, then idle
    writer.write(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    start = loop.time()
    await read_to_eof(reader)
    assert loop.time() - start < 5, "an idle keep-alive connection was not closed"
    writer.close()


async def test_slow_body_is_408(cluster: Cluster) -> None:
    """A body that does not arrive within ``read_timeout_ms`` is 408
    ``request-timeout``, and the connection is closed."""
    c = cluster
    limit_api(c, read_timeout_ms=300)
    await c.start(0)
    reader, writer = await connect(c.homes[0].api)
    writer.write(
        b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    status, body = parse_answer(await read_to_eof(reader))
    writer.close()
    assert status == 408 and body["error"]["code"] == "request-timeout", body


async def test_unparseable_request_is_a_json_400(cluster: Cluster) -> None:
    """A request aiohttp's parser refuses (a NUL in a header value) is answered with
    the JSON error body like every other error, not aiohttp's text/plain page."""
    await cluster.start(0)
    reader, writer = await connect(cluster.homes[0].api)
    writer.write(b"GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n")
    status, body = parse_answer(await read_to_eof(reader))
    writer.close()
    assert status == 400 and body["error"]["code"] == "malformed", body
