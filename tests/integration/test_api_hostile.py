"""The client and admin APIs against hostile clients (issue 11, items 9-11).

A 4-validator testnet with only node 0 running (no quorum: an accepted
transaction stays pending) serves real HTTP on loopback. Requests are raw
bytes on a socket where the exact bytes matter (a non-ASCII header), so that
no client library normalises them first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from node.api.openapi import openapi_document
from node.ledger.domains import DOMAINS
from tests.integration.cluster import HOST, Cluster, get_json, post_tx

NON_ASCII_DIGITS = (
    "%C2%B2",
    "%C2%B3",
    "%D9%A3",
    "%EF%BC%91",
)  # ² ³ ٣ (Arabic-Indic) １ (fullwidth)


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """Send ``head`` (request line and headers, without the blank line) and ``body``
    on a fresh connection; (status, headers, JSON body or text) of the answer."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        return status, headers, json.loads(payload)
    except ValueError:
        return status, headers, payload.decode("utf-8", "replace")


def _error_code(body: Any) -> str:
    assert isinstance(body, dict) and "error" in body, body
    return str(body["error"]["code"])


async def test_non_ascii_digits_are_malformed_not_500(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """``str.isdigit`` accepts ² and friends, ``int`` does not: every integer in a
    path or query string is parsed by one strict ASCII helper, so such digits are
    400 ``malformed`` on every route, never 500."""
    c = cluster
    await c.start(0)
    api, admin, token = c.homes[0].api_url, c.homes[0].admin_url, c.homes[0].token
    for digit in NON_ASCII_DIGITS:
        status, body = await get_json(http, f"{api}/v1/blocks/{digit}")
        assert status == 400 and _error_code(body) == "malformed", (digit, body)
        for route, param in (
            ("/v1/ehr/emergency-accesses", "limit"),
            ("/v1/ehr/emergency-accesses", "from_height"),
            ("/v1/supply/alerts", "limit"),
            ("/v1/trials", "limit"),
        ):
            status, body = await get_json(http, f"{api}{route}?{param}={digit}")
            assert status == 400 and _error_code(body) == "malformed", (route, param, body)
        status, body = await get_json(http, f"{admin}/blocks/recent?limit={digit}", token)
        assert status == 400 and _error_code(body) == "malformed", body
    # very long digit strings are out of range, not a 500 from int()'s digit limit
    status, body = await get_json(http, f"{api}/v1/blocks/{'9' * 5000}")
    assert status == 400, body
    status, body = await get_json(http, f"{api}/v1/trials?limit={'9' * 5000}")
    assert status == 400 and _error_code(body) == "malformed", body


async def test_every_query_route_survives_hostile_parameters(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Every domain query, with hostile path and query values, answers < 500."""
    c = cluster
    await c.start(0)
    api = c.homes[0].api_url
    values = [*NON_ASCII_DIGITS, "-1", "%00", "%C3%A9", "%ED%A0%80", "9" * 300, "0" * 70]
    for domain in DOMAINS:
        for q in domain.queries:
            names = [p[1:-1] for p in q.path.split("/") if p.startswith("{")]
            for value in values:
                path = q.path
                for name in names:
                    path = path.replace("{" + name + "}", value)
                params = "&".join(f"{p}={value}" for p in q.params)
                url = f"{api}/v1{path}" + (f"?{params}" if params else "")
                async with http.get(url) as resp:
                    assert resp.status < 500, (url, resp.status, await resp.text())


async def test_non_ascii_bearer_token_is_401_not_500(cluster: Cluster) -> None:
    """``hmac.compare_digest`` refuses non-ASCII str: the token is compared as bytes."""
    c = cluster
    await c.start(0)
    port = c.homes[0].admin
    for token in ("é".encode(), b"\xff\xfe", "\u2603".encode(), b""):
        head = b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
        status, _, body = await raw_request(port, head)
        assert status == 401 and _error_code(body) == "unauthorized", (token, body)
    good = c.homes[0].token.encode()
    status, _, body = await raw_request(
        port, b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + good
    )
    assert status == 200 and body["chain_id"] == c.chain_id, body


async def test_pending_copy_with_a_forged_signature_is_refused(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A copy of a pending transaction whose signature is all zeros (same hash: the
    hash does not cover the signature) is ``bad-signature``, not 202: the duplicate
    answer is given only for the very same bytes."""
    c = cluster
    await c.start(0)  # no quorum: the transaction stays pending
    api = c.homes[0].api_url
    tx = c.anchor_tx(member=0)
    assert await post_tx(http, api, tx.wire) == (202, {"hash": tx.hash})
    assert (await get_json(http, f"{api}/v1/txs/{tx.hash}"))[1]["status"] == "pending"
    forged = tx.to_json_obj()
    forged["sig"] = "0" * 128
    status, body = await post_tx(http, api, json.dumps(forged).encode())
    assert status == 400 and _error_code(body) == "bad-signature", body
    # the identical bytes again: idempotent, the stored copy's hash
    assert await post_tx(http, api, tx.wire) == (202, {"hash": tx.hash})
    # the same transaction in another JSON layout is the same transaction
    relaid = json.dumps(tx.to_json_obj(), indent=1).encode()
    assert await post_tx(http, api, relaid) == (202, {"hash": tx.hash})
    assert len(c.node(0).mempool) == 1


async def test_405_keeps_allow_and_codes_are_documented(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A wrong method is 405 with its ``Allow`` header and the JSON error body; an
    oversized body is 413 ``too-large`` (one spelling for one meaning)."""
    c = cluster
    await c.start(0)
    api = c.homes[0].api_url
    async with http.put(f"{api}/v1/txs", data=b"{}") as resp:
        assert resp.status == 405
        assert "POST" in resp.headers.get("Allow", ""), dict(resp.headers)
        assert _error_code(await resp.json()) == "method-not-allowed"
    big = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    status, body = await post_tx(http, api, big)
    assert status == 413 and _error_code(body) == "too-large", body
    # over the transaction limit but under the HTTP body limit: the same code
    status, body = await post_tx(http, api, b'{"x": "' + b"a" * (100 << 10) + b'"}')
    assert status == 413 and _error_code(body) == "too-large", body
    assert "/v1/txs" in openapi_document()["paths"]


async def _chunks(total: int, size: int = 64 << 10) -> AsyncIterator[bytes]:
    """``total`` bytes as a chunked body (no Content-Length: only reading it shows
    that it is too large)."""
    for start in range(0, total, size):
        yield b"a" * min(size, total - start)


async def test_body_over_the_listener_limit_without_length_is_too_large(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A chunked body over the app's ``client_max_size`` is refused by aiohttp itself
    while it is read, not by a handler: the answer is still JSON with the one declared
    code, 413 ``too-large``, on the client API and on the admin API."""
    c = cluster
    home = c.homes[0]
    home.cfg = dataclasses.replace(
        home.cfg, admin=dataclasses.replace(home.cfg.admin, enable_mutations=True)
    )
    await c.start(0)
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{home.api_url}/v1/txs", data=_chunks(2 << 20), headers=headers) as r:
        assert r.status == 413, await r.text()
        assert _error_code(await r.json()) == "too-large"
    headers["Authorization"] = f"Bearer {home.token}"
    url = f"{home.admin_url}/admin/backup"
    async with http.post(url, data=_chunks(2 << 20), headers=headers) as r:
        assert r.status == 413, await r.text()
        assert _error_code(await r.json()) == "too-large"
    assert not (home.path / "backups").exists()
