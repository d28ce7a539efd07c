"""State sync (node/statesync/): a node that joins restores a verified snapshot.

Five real nodes in one event loop; genesis names four validators that take a
snapshot at every checkpoint (``sync.snapshot_interval = 1``, every 4 heights).
The fifth node has an empty database, ``sync.state_sync`` on and node0 as its
one peer. It checks that:

- the validators complete snapshots once their checkpoint is stable, and keep
  ``snapshot_keep`` of them;
- the fifth node, once registered on chain, restores the newest snapshot instead
  of replaying: its base height is the snapshot's, block sync takes it to the tip,
  and it then commits the same blocks (hashes and state roots) as the validators;
- below its base it answers ``404 not-yet-backfilled`` for blocks and proofs, a
  transaction committed there still has its status, and its resubmission is
  refused as a replay (the state keeps every result);
- ``/status`` shows the state sync's phase and progress;
- the new node, an observer, takes snapshots of its own, signed off with a
  validator's stable checkpoint, that verify against genesis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import aiohttp
import msgspec

from node.net.wire import ChunkFrame, SnapshotFrame, encode_frame
from node.setup.config import load_config
from node.statesync.manifest import decode_manifest, encode_manifest, verify_manifest
from tests.integration.cluster import Cluster, assert_alive, get_json, post_tx, wait_until
from tests.integration.test_validator_change import (
    SMALL_EPOCHS,
    _commit,
    _four_of_five,
    _register,
)


def _snapshot_config(cluster: Cluster, *, joiner: int) -> None:
    for home in cluster.homes:
        cfg = load_config(home.path, env={})
        sync = dataclasses.replace(
            cfg.sync,
            snapshot_interval=1,
            snapshot_keep=2,
            snapshot_chunk_bytes=2048,  # many chunks even for a small state
            state_sync=home.index == joiner,
            parallel_peers=3,  # fetch once three offers are in: usually every honest one
        )
        home.cfg = dataclasses.replace(cfg, sync=sync)


async def test_a_new_node_restores_a_snapshot_and_follows(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    cluster = make_cluster(5, consensus=SMALL_EPOCHS)
    _four_of_five(cluster)
    _snapshot_config(cluster, joiner=4)
    await cluster.start(0, 1, 2, 3)
    await cluster.wait_connected([0, 1, 2, 3])
    early = [cluster.anchor_tx(i % 4) for i in range(12)]
    for tx in early:
        status, body = await post_tx(http, cluster.homes[0].api_url, tx.wire)
        assert status == 202, body
    await cluster.wait_committed([t.hash for t in early], [0])
    newcomer = cluster.homes[4]
    await _register(http, cluster, 4)
    # more blocks, so that a checkpoint above the early transactions becomes stable
    for _ in range(6):
        await _commit(http, cluster, cluster.anchor_tx(1), [0])
    store0 = cluster.node(0).snapshot_service.snapshots
    complete = await wait_until(
        "node0 to complete a snapshot above the early transactions",
        store0.complete_heights,
        lambda hs: bool(hs) and hs[-1] >= 8,
    )
    assert len(complete) <= 2  # snapshot_keep

    await cluster.start(4)
    node4 = cluster.node(4)
    assert node4.statesync is not None
    await wait_until(
        "node4 to restore a snapshot",
        lambda: node4.status()["state_sync"],
        lambda st: st["phase"] == "restored",
        timeout=60,
    )
    base = node4.store.base_height() if node4.store is not None else 0
    assert base >= 8 and base % 4 == 0, base
    sync_status = node4.status()["state_sync"]
    assert sync_status["height"] == base
    assert sync_status["chunks_done"] == sync_status["chunks_total"] > 1

    # it follows: a new transaction commits on it as on the validators
    late = cluster.anchor_tx(2)
    await _commit(http, cluster, late, [0, 4])
    height = await cluster.wait_same_height([0, 1, 2, 3, 4], at_least=base + 1)
    for h in range(base, height + 1):
        assert cluster.block(4, h)["hash"] == cluster.block(0, h)["hash"], h
        assert cluster.header(4, h)["state_root"] == cluster.header(0, h)["state_root"], h

    # below the base: no blocks, no proofs, but the facts of the state
    api4 = newcomer.api_url
    status, body = await get_json(http, f"{api4}/v1/blocks/1")
    assert (status, body["error"]["code"]) == (404, "not-yet-backfilled"), body
    first = early[0]
    status, body = await get_json(http, f"{api4}/v1/proofs/{first.hash}")
    assert (status, body["error"]["code"]) == (404, "not-yet-backfilled"), body
    status, body = await get_json(http, f"{api4}/v1/txs/{first.hash}")
    assert status == 200 and body["status"] == "committed" and body["height"] < base, body
    status, body = await post_tx(http, api4, first.wire)
    assert status == 400 and body["error"]["code"] == "replay", body

    # an observer takes snapshots too, signed off with a validator's checkpoint
    for _ in range(6):
        await _commit(http, cluster, cluster.anchor_tx(3), [0])
    observed = await wait_until(
        "node4, an observer, to complete a snapshot of its own",
        node4.snapshot_service.snapshots.complete_heights,
        lambda hs: bool(hs) and hs[-1] > base,
    )
    manifest = decode_manifest(node4.snapshot_service.snapshots.manifest(observed[-1]) or b"")
    checked = verify_manifest(
        manifest,
        cluster.chain_id,
        cluster.genesis.validator_public_keys(),
        max_chunk_bytes=1 << 20,
        payload_root=node4.rules.payload_root,
    )
    assert checked.height == observed[-1]
    assert_alive(cluster)


async def test_forged_manifests_and_chunks_are_refused_and_their_peers_blamed(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """node0 serves a manifest whose state is not the certified one (another state
    hash: its root is signed by nobody), node1 the true manifest but chunks with a
    byte changed. The joiner refuses both, penalises them, and restores the true
    state from node2 and node3 without writing anything it did not verify."""
    cluster = make_cluster(5, consensus=SMALL_EPOCHS)
    _four_of_five(cluster)
    _snapshot_config(cluster, joiner=4)
    await cluster.start(0, 1, 2, 3)
    await cluster.wait_connected([0, 1, 2, 3])
    await _register(http, cluster, 4)
    for _ in range(8):
        await _commit(http, cluster, cluster.anchor_tx(1), [0])
    for i in (0, 1, 2, 3):
        await wait_until(
            f"node{i} to complete a snapshot",
            cluster.node(i).snapshot_service.snapshots.complete_heights,
            lambda hs: bool(hs) and hs[-1] >= 8,
        )

    liar0 = cluster.node(0).snapshot_service

    def forged_manifest(peer: bytes) -> None:
        true = decode_manifest(liar0.snapshots.newest_manifest() or b"")
        other = bytes([true.state_hash[0] ^ 1]) + true.state_hash[1:]
        forged = msgspec.structs.replace(true, state_hash=other)
        liar0._send(peer, encode_frame(SnapshotFrame(encode_manifest(forged))))

    liar1 = cluster.node(1).snapshot_service

    def forged_chunk(peer: bytes, height: int, index: int) -> None:
        data = bytearray(liar1.snapshots.chunk(height, index) or b"")
        data[-1] ^= 1
        liar1._send(peer, encode_frame(ChunkFrame(height, index, bytes(data))))

    liar0.serve_manifest = forged_manifest  # type: ignore[method-assign]
    liar1.serve_chunk = forged_chunk  # type: ignore[method-assign]

    await cluster.start(4)
    node4 = cluster.node(4)
    assert node4.statesync is not None
    await wait_until(
        "node4 to restore the true snapshot from node2 and node3",
        lambda: node4.status()["state_sync"],
        lambda st: st["phase"] == "restored",
        timeout=60,
    )
    ids = [h.node_id for h in cluster.homes]
    # node0 is always asked (the joiner's configured peer); node1 is refused once
    # asked for a chunk, which it is when it offered in time to be a source
    expected = {ids[0], ids[1]} if ids[1] in node4.statesync.chunk_sources else {ids[0]}
    assert node4.statesync.refused == expected
    assert node4.statesync.chunk_sources - expected  # the true state came from others
    late = cluster.anchor_tx(2)
    await _commit(http, cluster, late, [2, 4])
    height = await cluster.wait_same_height([2, 3, 4], at_least=node4.applier.tip.height)
    assert cluster.header(4, height)["state_root"] == cluster.header(2, height)["state_root"]
    assert_alive(cluster)


async def test_a_node_without_state_sync_still_replays_from_genesis(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """The default: no snapshot is asked for, every block is here (base 0)."""
    cluster = make_cluster(4, consensus=SMALL_EPOCHS)
    await cluster.start(0, 1, 2, 3)
    tx = cluster.anchor_tx(0)
    status, _ = await post_tx(http, cluster.homes[0].api_url, tx.wire)
    assert status == 202
    await cluster.wait_committed([tx.hash], [0, 1, 2, 3])
    node = cluster.node(3)
    assert node.statesync is None and node.status()["state_sync"] is None
    assert node.store is not None and node.store.base_height() == 0
    assert cluster.block(3, 1)["header"]["height"] == 1  # every block from genesis
