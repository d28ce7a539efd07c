"""Admission asks who may sign (issue 11, item 8): a transaction of a random key is
refused with 403 ``signer-not-allowed`` on the client API and dropped (the peer
lightly penalised) on gossip, so it is never ordered nor stored; a member's and
an enrolled patient's transactions pass."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import aiohttp
import nacl.signing

from node.core.tx import Tx, build_tx
from tests.integration.cluster import Cluster, assert_alive, get_json, post_tx, wait_until


def _anchor(c: Cluster, key: nacl.signing.SigningKey) -> Tx:
    body = {"digest": secrets.token_hex(32), "kind": "itest"}
    return build_tx(c.chain_id, "data.anchor", body, key, secrets.randbits(62))


async def test_random_key_refused_member_and_enrolled_patient_pass(
    make_cluster: Callable[..., Cluster],
    http: aiohttp.ClientSession,
) -> None:
    c = make_cluster(4)
    await c.start(0, 1, 2, 3)
    await c.wait_connected(range(4))
    api = c.homes[0].api_url
    stranger = nacl.signing.SigningKey.generate()

    # before block 1: the founders of genesis may sign, a stranger may not
    member_tx = c.anchor_tx(member=0)
    status, body = await post_tx(http, api, member_tx.wire)
    assert (status, body) == (202, {"hash": member_tx.hash})
    spam = _anchor(c, stranger)
    status, body = await post_tx(http, api, spam.wire)
    assert status == 403 and body["error"]["code"] == "signer-not-allowed", body
    assert "data.anchor: signer is not a key of an active member" in body["error"]["message"]

    # a patient key: refused until its enrolment commits, then it signs its consents
    patient = nacl.signing.SigningKey.generate()
    patient_hex = bytes(patient.verify_key).hex()
    consent = {
        "grantee": "hospital-0",
        "scope": "all",
        "purpose": ["TREAT"],
        "period": {"start": 0, "end": 10**13},
    }
    early = build_tx(c.chain_id, "consent.grant", consent, patient, 1)
    status, body = await post_tx(http, api, early.wire)
    assert status == 403 and body["error"]["code"] == "signer-not-allowed", body
    member0 = c.homes[0].member_key
    enrol = build_tx(c.chain_id, "patient.enroll", {"patient": patient_hex}, member0, 7)
    assert await c.node(1).submit_tx(enrol.wire) == enrol.hash
    await c.wait_committed([member_tx.hash, enrol.hash], range(4))
    grant = build_tx(c.chain_id, "consent.grant", consent, patient, 2)
    status, body = await post_tx(http, api, grant.wire)
    assert (status, body) == (202, {"hash": grant.hash})

    # gossip: a peer passing on a stranger's transactions loses a point, once a frame
    node2 = c.node(2)
    peer = c.homes[3].node_id
    before = node2.transport._penalties.count(peer)
    spam2 = [_anchor(c, stranger), _anchor(c, nacl.signing.SigningKey.generate())]
    await node2._on_gossiped_txs(peer, [t.wire for t in spam2])
    assert node2.transport._penalties.count(peer) == before + 1
    assert node2.mempool.rejected.get("signer-not-allowed", 0) == 0  # refused before it
    assert all(t.hash not in node2.mempool for t in spam2)

    await c.wait_committed([grant.hash], range(4))
    # a block's transactions leave the mempool just after the block is stored
    await wait_until(
        "every mempool empty",
        lambda: [len(c.node(i).mempool) for i in range(4)],
        lambda m: not any(m),
    )
    for i in range(4):
        for t in (spam, early, *spam2):
            assert c.node(i).tx_status(t.hash)["status"] == "unknown", (i, t.hash)
        assert c.node(i).tx_status(grant.hash)["result"]["status"] == "ok"
    status, st = await get_json(http, f"{c.homes[0].admin_url}/mempool", c.homes[0].token)
    assert status == 200 and st["rejected"].get("signer-not-allowed") == 2, st
    assert_alive(c)
