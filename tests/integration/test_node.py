"""Integration tests of the node daemon: several ``Node`` objects in one event loop.

The clusters are ``tests.integration.cluster.Cluster`` (real homes, real LevelDB,
real loopback sockets and HTTP); the fixtures ``make_cluster`` and ``http`` come
from this directory's ``conftest.py``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp
import nacl.signing
import pytest

from consensus.messages import Prepare, sign_message
from node import daemon
from node.core.keys import KeySigner
from node.daemon import Node
from node.net.budget import PeerBudget, TrafficBudget
from node.net.transport import Transport
from node.net.wire import ConsensusFrame, GetBlocksFrame, encode_frame
from node.setup.genesis import (
    genesis_hash,
)
from tests.integration.cluster import (
    CHAIN,
    HOST,
    Cluster,
    Home,
    assert_alive,
    get_json,
    post_tx,
    wait_until,
)


# ------------------------------------------------------------------ (a) normal case
async def test_four_nodes_commit_txs_submitted_to_each_node(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """Four validators commit transactions submitted to each of them (in process and
    over HTTP) and end at one height with identical block hashes and state roots."""
    c = make_cluster(4)
    await c.start(0, 1, 2, 3)
    await c.wait_connected(range(4))
    hashes: list[str] = []
    for i in range(4):
        for k in range(6):
            tx = c.anchor_tx(member=i)
            if k % 2 == 0:
                assert await c.node(i).submit_tx(tx.wire) == tx.hash
            else:
                status, body = await post_tx(http, c.homes[i].api_url, tx.wire)
                assert (status, body) == (202, {"hash": tx.hash})
            hashes.append(tx.hash)
    await c.wait_committed(hashes, range(4))
    height = await c.wait_same_height(range(4))
    chains = {i: c.block_hashes(i, height) for i in range(4)}
    assert all(chain == chains[0] for chain in chains.values()), chains
    for h in range(1, height + 1):
        roots = {i: c.header(i, h)["state_root"] for i in range(4)}
        assert len(set(roots.values())) == 1, f"state roots differ at height {h}: {roots}"
    for i in range(4):
        results = [c.node(i).tx_status(h)["result"]["status"] for h in hashes]
        assert results == ["ok"] * len(hashes), f"node{i}: {results}"
    assert_alive(c)


# ------------------------------------------------------------------ (b) late joiner
async def test_late_node_syncs_then_takes_part(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """A validator started after the others committed 20 blocks (past a checkpoint)
    catches up, reports syncing false with the same block hashes, and then its
    votes are needed: with another validator stopped, new blocks still commit."""
    c = make_cluster(4)
    await c.start(0, 1, 2)
    await c.wait_connected(range(3))
    for k in range(20):  # one transaction per block: 20 blocks
        tx = c.anchor_tx(member=k % 3)
        await c.node(k % 3).submit_tx(tx.wire)
        await c.wait_committed([tx.hash], [0])
    height = await c.wait_same_height(range(3), at_least=20)

    await c.start(3)
    late = c.homes[3]

    async def status3() -> Any:
        return (await get_json(http, f"{late.admin_url}/status", late.token))[1]

    await wait_until(
        f"node3 at height {height} and not syncing",
        status3,
        lambda st: st["height"] >= height and st["syncing"] is False,
    )
    assert c.block_hashes(3, height) == c.block_hashes(0, height)
    # every signature it checked (certificates of synced blocks, votes) was checked
    # in the verify pool first: none on the event loop
    assert c.node(3).signatures.hits > 0 and c.node(3).signatures.misses == 0

    await c.stop(2)  # now nodes 0, 1 and 3 form the only quorum: node3 must vote
    await c.wait_connected([0, 1, 3])
    tx = c.anchor_tx(member=3)
    await c.node(3).submit_tx(tx.wire)
    await c.wait_committed([tx.hash], [0, 1, 3])
    top = await c.wait_same_height([0, 1, 3], at_least=height + 1)
    assert c.block_hashes(3, top) == c.block_hashes(0, top) == c.block_hashes(1, top)
    st = await status3()
    assert st["syncing"] is False and st["height"] == top, st
    assert_alive(c)


# ------------------------------------------------------------------ (c) hostile peers
def _peer_info(node: Node, peer_id: bytes) -> dict[str, Any] | None:
    for info in node.transport.peers():
        if info.node_id == peer_id.hex():
            return info.to_dict()
    return None


async def _dialer(c: Cluster, key: nacl.signing.SigningKey, target: Home) -> Transport:
    """A started bare transport with ``key`` that dials ``target``'s p2p port (and
    ignores what it receives): a hand-driven peer."""
    dialer = Transport(
        key,
        c.chain_id,
        HOST,
        0,
        allowed=lambda _peer: True,
        on_frame=lambda _peer, _data: None,
        backoff_base=0.05,
        backoff_cap=0.5,
        genesis_hash=genesis_hash(c.genesis),
    )
    dialer.add_peer(target.node_id, f"{HOST}:{target.p2p}")
    await dialer.start()
    return dialer


async def test_malformed_frame_from_authenticated_peer_is_dropped_and_penalised(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """A peer that passed the handshake (with validator 3's key) sends frames that
    are not frames: each is dropped and counted as a penalty in peers() and in
    /metrics; the node keeps committing; at the threshold the peer is banned and
    disconnected."""
    c = make_cluster(4)
    await c.start(0, 1, 2)
    await c.wait_connected(range(3))
    target = c.homes[0]
    impostor_key = c.homes[3].node_key
    impostor_id = c.homes[3].node_id
    attacker = await _dialer(c, impostor_key, target)
    try:
        node0 = c.node(0)
        await wait_until(
            "the attacker linked to node0",
            lambda: (
                attacker.is_connected(target.node_id),
                node0.transport.is_connected(impostor_id),
            ),
            all,
        )
        assert attacker.send(target.node_id, b"\xc1 this is not a frame")
        info = await wait_until(
            "node0 to count a penalty against the attacker",
            lambda: _peer_info(node0, impostor_id),
            lambda d: d is not None and d["penalties"] >= 1,
        )
        assert info["penalties"] == 1 and info["connected"], info
        status, peers = await get_json(http, f"{target.admin_url}/peers", target.token)
        assert status == 200
        [listed] = [p for p in peers["peers"] if p["node_id"] == impostor_id.hex()]
        assert listed["penalties"] == 1 and listed["name"] == "node3", listed
        metrics = node0.metrics_text().decode()
        assert 'hygeia_rejected_frames_total{reason="malformed"} 1.0' in metrics

        tx = c.anchor_tx(member=0)
        await node0.submit_tx(tx.wire)
        await c.wait_committed([tx.hash], range(3))
        assert_alive(c)

        for _ in range(99):  # the default threshold is 100 points, 1 per malformed frame
            attacker.send(target.node_id, b"\xc1")
        info = await wait_until(
            "node0 to ban and drop the attacker",
            lambda: _peer_info(node0, impostor_id),
            lambda d: d is not None and d["banned_until_mono"] is not None and not d["connected"],
        )
        assert info["penalties"] == 100, info
        tx = c.anchor_tx(member=1)
        await c.node(1).submit_tx(tx.wire)
        await c.wait_committed([tx.hash], range(3))
        assert_alive(c)
    finally:
        await attacker.stop()


async def test_handshake_with_unknown_key_is_refused(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A dialer whose node key is in neither genesis nor [p2p] peers is refused in
    the handshake (counted as unknown_key) and never becomes a peer."""
    c = make_cluster(4)
    await c.start(0)
    target = c.homes[0]
    stranger_key = nacl.signing.SigningKey.generate()
    stranger_id = bytes(stranger_key.verify_key)
    stranger = await _dialer(c, stranger_key, target)
    try:
        node0 = c.node(0)
        await wait_until(
            "node0 to refuse the stranger's handshake",
            node0.transport.refusals,
            lambda r: r.get("unknown_key", 0) >= 1,
        )
        assert not stranger.is_connected(target.node_id)
        assert not node0.transport.is_connected(stranger_id)
        assert stranger_id not in node0.transport.connected()
        assert all(p.node_id != stranger_id.hex() for p in node0.transport.peers())
        assert_alive(c)
    finally:
        await stranger.stop()


async def test_validator_sending_badly_signed_votes_is_banned_then_readmitted(
    make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validator (3's key) that sends PREPAREs with random signatures (once 462,000
    in 10 s cost it nothing): each is checked in the verify pool, dropped before the
    replica sees it and penalised as a forgery; the third one gets it banned and
    disconnected. The others keep committing, and once the ban ends the validator
    is accepted again (no ban is for good)."""
    monkeypatch.setattr(daemon, "PEER_BAN_SECONDS", 1.0)
    c = make_cluster(4)
    await c.start(0, 1, 2)
    await c.wait_connected(range(3))
    target = c.homes[0]
    impostor_id = c.homes[3].node_id
    attacker = await _dialer(c, c.homes[3].node_key, target)
    try:
        node0 = c.node(0)
        await wait_until(
            "the validator linked to node0",
            lambda: (
                attacker.is_connected(target.node_id),
                node0.transport.is_connected(impostor_id),
            ),
            all,
        )
        for h in range(1, 501):
            vote = Prepare(0, h, secrets.token_bytes(32), 3, secrets.token_bytes(64))
            attacker.send(target.node_id, encode_frame(ConsensusFrame(vote)))
        info = await wait_until(
            "node0 to ban and drop the validator",
            lambda: _peer_info(node0, impostor_id),
            lambda d: d is not None and d["banned_until_mono"] is not None and not d["connected"],
        )
        assert info["penalties"] >= 3, info
        metrics = node0.metrics_text().decode()
        assert 'hygeia_rejected_frames_total{reason="bad-signature"}' in metrics
        assert "bad-signature" not in node0.consensus_json()["rejected"]

        tx = c.anchor_tx(member=0)
        await node0.submit_tx(tx.wire)
        await c.wait_committed([tx.hash], range(3))
        info = await wait_until(
            "node0 to accept the validator again after the ban",
            lambda: _peer_info(node0, impostor_id),
            lambda d: d is not None and d["connected"] and d["banned_until_mono"] is None,
        )
        assert attacker.is_connected(target.node_id)
        assert_alive(c)
    finally:
        await attacker.stop()


async def test_validly_signed_flood_over_the_budget_is_dropped_unverified_then_banned(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A validator repeating one validly signed PREPARE as fast as it can: beyond its
    per-second budget the copies are dropped before any signature check, each window
    over budget is penalised, and it ends up banned; the others keep committing."""
    c = make_cluster(4)
    await c.start(1, 2)
    node0 = Node(c.homes[0].cfg)
    node0.budget = TrafficBudget(PeerBudget(messages=20, bytes=1 << 20, heavy=2, penalty_points=50))
    c.nodes[0] = node0
    await node0.start()
    await c.wait_connected(range(3))
    target = c.homes[0]
    impostor_key = c.homes[3].node_key
    impostor_id = c.homes[3].node_id
    attacker = await _dialer(c, impostor_key, target)
    try:
        await wait_until(
            "the validator linked to node0",
            lambda: node0.transport.is_connected(impostor_id),
        )
        vote = sign_message(Prepare(0, 1, bytes(32), 3), KeySigner(impostor_key).sign, c.chain_id)
        frame = encode_frame(ConsensusFrame(vote))

        def flood() -> dict[str, Any] | None:
            for _ in range(50):
                attacker.send(target.node_id, frame)
            return _peer_info(node0, impostor_id)

        info = await wait_until(
            "node0 to ban the flooding validator",
            flood,
            lambda d: d is not None and d["banned_until_mono"] is not None,
        )
        assert info["penalties"] >= 2, info
        dropped = node0.budget.dropped
        assert dropped >= 1
        metrics = node0.metrics_text().decode()
        assert f'hygeia_rejected_frames_total{{reason="over-budget"}} {float(dropped)}' in metrics
        # what was within budget was verified in the pool and trusted by the replica
        assert node0.signatures.hits >= 1

        tx = c.anchor_tx(member=1)
        await c.node(1).submit_tx(tx.wire)
        await c.wait_committed([tx.hash], range(3))
        assert_alive(c)
    finally:
        await attacker.stop()


# ------------------------------------------------------------------ (d) client and admin HTTP
async def test_http_api_errors_tx_lifecycle_openapi_and_admin_auth(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """POST /v1/txs answers 400 with a stable error code for malformed JSON, a bad
    signature and another chain; an accepted tx is pending while no quorum is up
    and committed once one is; /openapi.json is served; admin routes need the
    bearer token (401 without it or with a wrong one)."""
    c = make_cluster(4)
    await c.start(0, 1)  # two of four: no quorum, so an accepted tx stays pending
    api = c.homes[0].api_url

    status, body = await post_tx(http, api, b'{"chain_id": "hygeia-itest", "type": ')
    assert status == 400 and body["error"]["code"] == "malformed", body
    assert body["error"]["message"]

    good = c.anchor_tx(member=0)
    obj = good.to_json_obj()
    obj["sig"] = ("0" if obj["sig"][0] != "0" else "1") + obj["sig"][1:]
    status, body = await post_tx(http, api, json.dumps(obj).encode())
    assert status == 400 and body["error"]["code"] == "bad-signature", body

    other = c.anchor_tx(member=0, chain_id="another-chain")
    status, body = await post_tx(http, api, other.wire)
    assert status == 400 and body["error"]["code"] == "wrong-chain", body

    status, body = await get_json(http, f"{api}/v1/txs/not-a-hash")
    assert status == 400 and body["error"]["code"] == "malformed", body
    status, body = await get_json(http, f"{api}/v1/txs/{'ab' * 32}")
    assert (status, body["status"]) == (200, "unknown"), body

    status, body = await post_tx(http, api, good.wire)
    assert (status, body) == (202, {"hash": good.hash})
    status, body = await get_json(http, f"{api}/v1/txs/{good.hash}")
    assert status == 200
    assert body == {"status": "pending", "height": None, "index": None, "result": None}

    await c.start(2)  # a quorum: the proposal in flight commits
    body = await wait_until(
        "the tx to be committed on node0",
        lambda: get_json(http, f"{api}/v1/txs/{good.hash}"),
        lambda r: r[1]["status"] == "committed",
    )
    tx_status = body[1]
    assert tx_status["height"] >= 1 and tx_status["index"] == 0, tx_status
    assert tx_status["result"]["status"] == "ok", tx_status

    status, doc = await get_json(http, f"{api}/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3."), doc.get("openapi")
    assert "/v1/txs" in doc["paths"] and "/status" in doc["paths"]

    admin = c.homes[0].admin_url
    token = c.homes[0].token
    for route in ("/status", "/health", "/peers", "/consensus", "/metrics"):
        status, body = await get_json(http, f"{admin}{route}")
        assert status == 401 and body["error"]["code"] == "unauthorized", (route, body)
        status, body = await get_json(http, f"{admin}{route}", token="wrong-token")
        assert status == 401 and body["error"]["code"] == "unauthorized", (route, body)
    status, st = await get_json(http, f"{admin}/status", token)
    assert status == 200 and st["chain_id"] == CHAIN and st["height"] >= 1, st
    assert (st["epoch"], st["role"]) == (0, "validator"), st
    # the validator set is state: genesis's validators are epoch 0, from height 1
    genesis_set = [v.to_json() for v in c.genesis.validators]
    status, vs = await get_json(http, f"{api}/v1/validators")
    assert status == 200 and vs == {
        "epoch": 0,
        "from_height": 1,
        "validators": genesis_set,
        "pending": None,
    }, vs
    status, vs = await get_json(http, f"{api}/v1/validators?height=-1")
    assert status == 400 and vs["error"]["code"] == "malformed", vs
    status, rows = await get_json(http, f"{admin}/validators", token)
    assert status == 200 and [r["member"] for r in rows["validators"]] == [
        v["member"] for v in genesis_set
    ]
    assert [r["self"] for r in rows["validators"]] == [True, False, False, False]
    async with http.get(f"{admin}/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        assert "hygeia_height" in await r.text()
    assert_alive(c)


# ------------------------------------------------------------------ gossip to late links
async def test_tx_admitted_before_links_reaches_peers(
    make_cluster: Callable[..., Cluster],
) -> None:
    """A transaction admitted by a backup that has no peer links yet (it just started)
    reaches the other validators once the links come up, and is committed."""
    c = make_cluster(4, consensus={"view_change_timeout_ms": 500, "request_timeout_ms": 1000})
    await c.start(1)
    tx = c.anchor_tx(member=1)
    await c.node(1).submit_tx(tx.wire)
    # The gossip queue is private; it is the only way to know the loop already took
    # the tx (and sent it to no one: there is no link yet).
    await wait_until(
        "node1's gossip loop to take the tx",
        lambda: len(c.node(1).mempool._gossip),
        lambda queued: queued == 0,
    )
    await c.start(0, 2, 3)
    await c.wait_connected(range(4))
    await wait_until(
        "the tx to be committed on every node (status by node)",
        lambda: {f"node{i}": c.node(i).tx_status(tx.hash)["status"] for i in range(4)},
        lambda st: set(st.values()) == {"committed"},
        timeout=8.0,
    )


async def test_flood_of_tiny_block_requests_is_bounded_and_banned(
    make_cluster: Callable[..., Cluster],
) -> None:
    """1,000 GetBlocks requests of ~10 bytes (issue 11, item 5: they once pinned
    about 1 GB of answers): at most a few wait per peer and are answered one at a
    time as the peer reads; the excess is penalised until the peer is banned, and
    the send queue to it never holds more than its byte limit."""
    c = make_cluster(4)
    await c.start(0, 1, 2)
    await c.wait_connected(range(3))
    target = c.homes[0]
    impostor_id = c.homes[3].node_id
    attacker = await _dialer(c, c.homes[3].node_key, target)
    try:
        node0 = c.node(0)
        await wait_until(
            "the peer linked to node0",
            lambda: (
                attacker.is_connected(target.node_id),
                node0.transport.is_connected(impostor_id),
            ),
            all,
        )
        frame = encode_frame(GetBlocksFrame(1, 1000))
        assert len(frame) < 16
        for _ in range(1000):
            attacker.send(target.node_id, frame)
        peak = 0

        def banned() -> dict[str, Any] | None:
            nonlocal peak
            peak = max(peak, node0.block_server.pending(impostor_id))
            return _peer_info(node0, impostor_id)

        info = await wait_until(
            "node0 to ban the peer that asks far more than it reads",
            banned,
            lambda d: d is not None and d["banned_until_mono"] is not None,
        )
        assert info["penalties"] >= 20, info
        assert peak <= node0.block_server.max_pending
        assert node0.block_server.refused >= 20
        tx = c.anchor_tx(member=0)
        await node0.submit_tx(tx.wire)
        await c.wait_committed([tx.hash], range(3))
        assert_alive(c)
    finally:
        await attacker.stop()
