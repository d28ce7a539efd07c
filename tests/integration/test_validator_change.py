"""A validator set that changes while the nodes run (node/engine/epoch_switch.py).

Five real nodes in one event loop: genesis names four validators; the fifth
node starts with nothing but one peer (node0) in its config. It checks that:

- the validators refuse the fifth node's link until a member registers its key
  on chain (``node.register``); then it links, follows the chain and serves it;
- a 2/3 governance vote (``add-validator``) makes it a validator at the epoch
  boundary, with no config edit or restart anywhere, even on an idle network
  (empty blocks fill the way to the boundary);
- in the new epoch (n = 5, quorum 4) a block commits with node0 stopped, which
  needs the new validator's votes;
- every node ends with the same blocks and ``/v1/validators`` shows the set;
- a proof of a block of epoch 1 verifies with genesis's keys alone, through the
  epoch 0 validators' attestations of the new set (``epoch.attest``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from node.core.proof import ProofError, verify_proof
from node.core.tx import Tx, build_tx
from node.setup.config import load_config
from node.setup.genesis import Genesis, parse_genesis, write_genesis
from tests.integration.cluster import HOST, Cluster, assert_alive, get_json, post_tx, wait_until

DAY_MS = 86_400_000
SMALL_EPOCHS = {"checkpoint_interval": 4, "watermark_window": 8}


def _four_of_five(cluster: Cluster) -> None:
    """Genesis keeps the first four validators; node4 knows node0 only."""
    g = cluster.genesis
    draft = Genesis(g.chain_id, g.genesis_time, dict(g.consensus), g.validators[:4], g.members)
    genesis = parse_genesis(draft.to_json())
    for home in cluster.homes:
        write_genesis(home.path / "genesis.json", genesis)
    cluster.genesis = genesis
    home = cluster.homes[4]
    path = home.path / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count("# peers = []") == 1, path
    first = cluster.homes[0]
    peer = f'"{first.node_id.hex()}@{HOST}:{first.p2p}"'
    path.write_text(text.replace("# peers = []", f"peers = [{peer}]"), encoding="utf-8")
    for h in cluster.homes:
        h.cfg = load_config(h.path, env={})


def _tx(cluster: Cluster, member: int, kind: str, body: dict[str, Any]) -> Tx:
    key = cluster.homes[member].member_key
    return build_tx(cluster.chain_id, kind, body, key, time.time_ns() & ((1 << 62) - 1))


async def _commit(http: aiohttp.ClientSession, cluster: Cluster, tx: Tx, on: list[int]) -> None:
    status, body = await post_tx(http, cluster.homes[on[0]].api_url, tx.wire)
    assert status == 202, body
    await cluster.wait_committed([tx.hash], on)


async def _register(http: aiohttp.ClientSession, cluster: Cluster, i: int) -> None:
    """Member ``i`` registers node ``i``'s key on chain (``node.register``, an observer
    at its p2p address); committed on the four genesis validators."""
    home = cluster.homes[i]
    body = {"node_key": home.node_id.hex(), "p2p": f"{HOST}:{home.p2p}", "role": "observer"}
    await _commit(http, cluster, _tx(cluster, i, "node.register", body), [0, 1, 2, 3])


async def test_a_registered_node_is_voted_in_and_its_votes_count(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    cluster = make_cluster(5, consensus=SMALL_EPOCHS)
    _four_of_five(cluster)
    await cluster.start(0, 1, 2, 3, 4)
    await cluster.wait_connected([0, 1, 2, 3])
    newcomer = cluster.homes[4]
    node4 = cluster.node(4)
    assert node4.switch is not None and not node4.switch.is_validator
    # not registered: no validator accepts its link
    assert not node4.transport.connected()

    members = [m.id for m in cluster.genesis.members]
    await _register(http, cluster, 4)
    await wait_until(
        "node4 to link once registered and follow the chain",
        lambda: cluster.heights([0, 4]),
        lambda h: h[4] >= 1 and h[4] == h[0],
    )

    action = {
        "type": "add-validator",
        "member": members[4],
        "name": "node4",
        "node_key": newcomer.node_id.hex(),
        "p2p": f"{HOST}:{newcomer.p2p}",
    }
    expires = int(time.time() * 1000) + DAY_MS
    propose = _tx(cluster, 0, "gov.propose", {"action": action, "expires_ms": expires})
    await _commit(http, cluster, propose, [0, 1, 2, 3])
    for voter in (1, 2, 3):  # 4 of 5 members: the proposer's vote counts
        vote = _tx(cluster, voter, "gov.vote", {"proposal": propose.hash, "approve": True})
        await _commit(http, cluster, vote, [0, 1, 2, 3])

    # idle network: empty blocks carry the chain to the boundary, node4 takes its seat
    await wait_until(
        "every node in epoch 1, node4 a validator",
        lambda: [n.status() for n in cluster.nodes.values()],
        lambda sts: all(s["epoch"] == 1 for s in sts) and sts[4]["role"] == "validator",
        timeout=60,
    )
    # /status reads the role off the chain (the set in force for the next block); the
    # replica is built when the node has executed the epoch's last block, a moment later
    switch = node4.switch
    await wait_until("node4's replica of epoch 1", lambda: switch.is_validator)
    status, validators = await get_json(http, f"{cluster.homes[2].api_url}/v1/validators")
    assert status == 200 and validators["epoch"] == 1
    assert [v["node_key"] for v in validators["validators"]][-1] == newcomer.node_id.hex()
    assert validators["pending"] is None

    # n = 5, quorum 4: with node0 down a block needs node4's prepare and commit
    await cluster.stop(0)
    anchor = cluster.anchor_tx(1)
    await _commit(http, cluster, anchor, [1, 2, 3, 4])
    height = await cluster.wait_same_height([1, 2, 3, 4])
    # node0 is down: the quorum of 4 is nodes 1 to 4, the newcomer (index 4) among them
    signers = {c["validator"] for c in cluster.block(1, height)["certificate"]}
    assert signers == {1, 2, 3, 4}
    assert cluster.block_hashes(4, height) == cluster.block_hashes(1, height)

    # a proof of that block verifies with genesis alone: epoch 1 is attested on
    # chain by a quorum of epoch 0 (each validator submits its own epoch.attest)
    proof_url = f"{cluster.homes[4].api_url}/v1/proofs/{anchor.hash}"
    status, proof = await wait_until(
        "a quorum of epoch 0 to attest epoch 1 on chain",
        lambda: get_json(http, proof_url),
        lambda answer: answer[0] == 200,
    )
    genesis_keys = cluster.genesis.validator_public_keys()
    result = verify_proof(proof, cluster.chain_id, genesis_keys)
    assert result.epoch == 1 and set(result.validators) == {1, 2, 3, 4}
    assert [link["epoch"] for link in proof["epochs"]] == [1]
    assert proof["epochs"][0]["validators"][-1] == newcomer.node_id.hex()
    without_link = {**proof, "epochs": []}  # epoch 0's keys cannot check n = 5 votes
    with pytest.raises(ProofError):
        verify_proof(without_link, cluster.chain_id, genesis_keys)
    assert_alive(cluster)


async def test_an_unregistered_node_loses_its_links(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """A registered observer links and follows; once its member unregisters it, the
    validators close its link and refuse it (it keeps dialling node0 in vain)."""
    cluster = make_cluster(5, consensus=SMALL_EPOCHS)
    _four_of_five(cluster)
    await cluster.start(0, 1, 2, 3, 4)
    await cluster.wait_connected([0, 1, 2, 3])
    observer = cluster.homes[4]
    await _register(http, cluster, 4)
    node0 = cluster.node(0)
    await wait_until(
        "node0 to accept the registered observer's link",
        lambda: node0.transport.is_connected(observer.node_id),
    )
    gone = {"node_key": observer.node_id.hex()}
    await _commit(http, cluster, _tx(cluster, 4, "node.unregister", gone), [0, 1, 2, 3])
    await wait_until(
        "node0 to drop the unregistered observer",
        lambda: node0.transport.is_connected(observer.node_id),
        lambda linked: not linked,
    )
    # and it is not let back in: the next blocks reach the validators only
    anchor = cluster.anchor_tx(0)
    await _commit(http, cluster, anchor, [0, 1, 2, 3])
    assert not node0.transport.is_connected(observer.node_id)
    assert not node0._allowed_peer(observer.node_id)
    assert_alive(cluster)
