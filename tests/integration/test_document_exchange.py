"""Consent-gated document exchange between two institutions' nodes
(node/exchange/service.py, docs/document-exchange.md).

Four real nodes in one event loop. The custodian is ``pharmacy-2`` on node2, the
requester ``hospital-0`` on node0; every fetch goes to node0, which relays it
over the peer link to node2. It checks that:

- publishing stores the resource and submits its anchor; a commitment that does
  not match is refused (422) and nothing is submitted; over 16 MiB is 413;
- the requester's fetch is refused without a ticket, and answered under a
  committed access.log: sealed to the requester's key, opened and checked
  against the anchored commitment;
- every refusal the contract lists answers its code: bad, stale and replayed
  signatures, a signer that is no member, an unknown version, another member
  with the requester's ticket, a rejected ticket, a revoked consent, a
  break-glass window that block time has passed, an erased record, and a
  custodian that cannot be reached.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import nacl.signing

from node.core.keys import public_key_hex
from node.core.tx import Tx, build_tx
from node.exchange.canonical import MAX_RESOURCE_BYTES, commitment
from node.exchange.payload import open_fetch_answer
from node.exchange.signed_request import sign_request
from tests.integration.cluster import Cluster, get_json, post_tx, wait_until

REQUESTER, OTHER, CUSTODIAN = 0, 1, 2
RESOURCE = json.dumps(
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "HbA1c"},
        "valueQuantity": {"value": 6.30, "unit": "%"},
    },
    indent=1,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Scene:
    """The cluster, the HTTP session and the parties' keys, with shorthand steps."""

    def __init__(self, cluster: Cluster, http: aiohttp.ClientSession) -> None:
        self.cluster = cluster
        self.http = http
        self.patient = nacl.signing.SigningKey.generate()

    def key(self, member: int) -> nacl.signing.SigningKey:
        return self.cluster.homes[member].member_key

    def tx(self, kind: str, body: dict[str, Any], key: nacl.signing.SigningKey) -> Tx:
        return build_tx(self.cluster.chain_id, kind, body, key, secrets.randbits(62))

    async def commit(self, tx: Tx) -> dict[str, Any]:
        status, body = await post_tx(self.http, self.cluster.homes[0].api_url, tx.wire)
        assert status == 202, body
        await wait_until(
            f"{tx.type} {tx.hash[:12]} decided on nodes 0 and 2",
            lambda: [self.cluster.nodes[i].tx_status(tx.hash) for i in (0, 2)],
            lambda sts: all(s["status"] in ("committed", "rejected") for s in sts),
        )
        return self.cluster.nodes[0].tx_status(tx.hash)

    async def publish(
        self, text: str, record_id: str, *, salt: bytes | None = None, bad: bool = False
    ) -> tuple[int, Any, Tx]:
        salt = salt or secrets.token_bytes(32)
        digest = commitment(salt, text).hex() if not bad else secrets.token_hex(32)
        body = {
            "record_id": record_id,
            "patient": public_key_hex(self.patient),
            "type": "Observation",
            "commitment": digest,
            "version": 1,
        }
        anchor = self.tx("record.anchor", body, self.key(CUSTODIAN))
        payload = json.dumps(
            {"resource": text, "salt": salt.hex(), "anchor": json.loads(anchor.wire)}
        ).encode()
        path = "/v1/documents"
        headers = sign_request(self.key(CUSTODIAN), "POST", path, payload, _now_ms())
        url = self.cluster.homes[CUSTODIAN].api_url + path
        async with self.http.post(url, data=payload, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None), anchor

    async def fetch(
        self,
        version_id: str,
        ticket: str | None,
        *,
        key: nacl.signing.SigningKey | None = None,
        headers: dict[str, str] | None = None,
        on: int = REQUESTER,
    ) -> tuple[int, Any, dict[str, str]]:
        path = f"/v1/documents/{version_id}" + (f"?access={ticket}" if ticket else "")
        if headers is None:
            headers = sign_request(key or self.key(REQUESTER), "GET", path, None, _now_ms())
        url = self.cluster.homes[on].api_url + path
        async with self.http.get(url, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None), headers

    async def grant(self, record_id: str, grantee: str) -> str:
        body = {
            "grantee": grantee,
            "scope": "records",
            "data": [record_id],
            "purpose": ["TREAT"],
            "period": {"start": 0, "end": _now_ms() + 86_400_000},
        }
        result = await self.commit(self.tx("consent.grant", body, self.patient))
        assert result["status"] == "committed", result
        return str(result["result"]["data"]["consent_id"])

    async def access(self, record_id: str, consent_id: str, member: int = REQUESTER) -> str:
        body = {"record_id": record_id, "purpose": "TREAT", "consent_id": consent_id}
        tx = self.tx("access.log", body, self.key(member))
        await self.commit(tx)
        return tx.hash


def _block_time(cluster: Cluster, i: int, height: int | None) -> int:
    block = cluster.nodes[i].block_json(height)
    assert block is not None
    return int(block["header"]["timestamp"])


def _code(body: Any) -> str:
    return str(body["error"]["code"])


async def test_documents_travel_only_under_a_committed_consented_access(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    cluster = make_cluster(4)
    await cluster.start(0, 1, 2, 3)
    await cluster.wait_connected([0, 1, 2, 3])
    s = Scene(cluster, http)
    members = [m.id for m in cluster.genesis.members]
    enrol = s.tx("patient.enroll", {"patient": public_key_hex(s.patient)}, s.key(REQUESTER))
    assert (await s.commit(enrol))["status"] == "committed"

    # publish: a mismatching commitment is refused and its anchor never submitted
    status, body, anchor = await s.publish(RESOURCE, "obs-1", bad=True)
    assert (status, _code(body)) == (422, "commitment-mismatch"), body
    assert cluster.nodes[CUSTODIAN].tx_status(anchor.hash)["status"] == "unknown"
    status, body, _ = await s.publish("x" * (MAX_RESOURCE_BYTES + 1), "obs-big", bad=True)
    assert (status, _code(body)) == (413, "too-large"), body
    status, body, anchor = await s.publish(RESOURCE, "obs-1")
    assert status == 202, body
    assert body == {"hash": anchor.hash, "record_id": "obs-1", "version_id": anchor.hash}
    await cluster.wait_committed([anchor.hash], [0, 1, 2, 3])
    version = anchor.hash

    # no ticket yet
    status, body, _ = await s.fetch(version, None)
    assert (status, _code(body)) == (403, "no-ticket"), body
    consent = await s.grant("obs-1", members[REQUESTER])
    ticket = await s.access("obs-1", consent)

    # the fetch, relayed node0 -> node2, opened with the requester's key
    status, answer, used = await s.fetch(version, ticket)
    assert status == 200, answer
    opened = open_fetch_answer(
        s.key(REQUESTER),
        answer,
        version_id=version,
        expected_commitment=bytes.fromhex(anchor.body["commitment"]),
    )
    assert opened.text == RESOURCE
    exchange = cluster.nodes[CUSTODIAN].documents
    assert exchange is not None
    assert exchange.counts.get("served") == 1
    served = b'hygeia_documents_total{operation="serve",result="ok"} 1.0'
    assert served in cluster.nodes[CUSTODIAN].metrics_text()
    no_ticket = b'hygeia_documents_total{operation="fetch",result="no-ticket"} 1.0'
    assert no_ticket in cluster.nodes[REQUESTER].metrics_text()

    # signatures: replayed, stale, missing, and a signer that is no member
    status, body, _ = await s.fetch(version, ticket, headers=used)
    assert (status, _code(body)) == (401, "replayed"), body
    path = f"/v1/documents/{version}?access={ticket}"
    stale = sign_request(s.key(REQUESTER), "GET", path, None, _now_ms() - 120_000)
    status, body, _ = await s.fetch(version, ticket, headers=stale)
    assert (status, _code(body)) == (401, "stale"), body
    status, body, _ = await s.fetch(version, ticket, headers={})
    assert (status, _code(body)) == (401, "bad-signature"), body
    status, body, _ = await s.fetch(version, ticket, key=nacl.signing.SigningKey.generate())
    assert (status, _code(body)) == (403, "not-member"), body
    status, body, _ = await s.fetch(secrets.token_hex(32), ticket)
    assert (status, _code(body)) == (404, "unknown-version"), body

    # another member holding the requester's ticket; a ticket that was rejected
    status, body, _ = await s.fetch(version, ticket, key=s.key(OTHER))
    assert (status, _code(body)) == (403, "wrong-requester"), body
    refused = await s.access("obs-1", consent, member=OTHER)  # not OTHER's consent
    assert cluster.nodes[0].tx_status(refused)["status"] == "rejected"
    status, body, _ = await s.fetch(version, refused, key=s.key(OTHER))
    assert (status, _code(body)) == (403, "ticket-rejected"), body

    # the patient revokes: the same ticket no longer opens the record
    revoke = s.tx("consent.revoke", {"consent_id": consent}, s.patient)
    assert (await s.commit(revoke))["status"] == "committed"
    status, body, _ = await s.fetch(version, ticket)
    assert (status, _code(body)) == (403, "consent-revoked"), body

    # break-glass: answered inside the window, refused once block time passed it
    window_ms = 2_000
    body_em = {"record_id": "obs-1", "reason": "ETREAT", "duration_ms": window_ms}
    emergency = s.tx("access.emergency", body_em, s.key(REQUESTER))
    opened_at = await s.commit(emergency)
    assert opened_at["status"] == "committed", opened_at
    status, answer, _ = await s.fetch(version, emergency.hash)
    assert status == 200, answer

    async def later_block() -> int:
        filler = s.cluster.anchor_tx(REQUESTER)
        await s.commit(filler)
        return _block_time(cluster, CUSTODIAN, None)

    start = _block_time(cluster, 0, opened_at["height"])
    await wait_until(
        "a block past the break-glass window on the custodian",
        later_block,
        lambda t: t >= start + window_ms,
        interval=0.3,
    )
    status, body, _ = await s.fetch(version, emergency.hash)
    assert (status, _code(body)) == (403, "emergency-expired"), body

    # erasure: the custodian's store forgets it, every fetch answers erased
    erase = s.tx("record.erase", {"record_id": "obs-1", "reason": "patient-request"}, s.key(2))
    assert (await s.commit(erase))["status"] == "committed"
    await wait_until(
        "the custodian's store to erase the record",
        lambda: exchange.store.status(version),
        lambda st: st == "erased",
    )
    status, body, _ = await s.fetch(version, ticket)
    assert (status, _code(body)) == (403, "erased"), body

    # a second record, and its custodian gone
    status, body, anchor2 = await s.publish(RESOURCE, "obs-2")
    assert status == 202, body
    await cluster.wait_committed([anchor2.hash], [0, 2])
    consent2 = await s.grant("obs-2", members[REQUESTER])
    ticket2 = await s.access("obs-2", consent2)
    await cluster.stop(CUSTODIAN)
    await wait_until(
        "node0 to notice node2 is gone",
        lambda: cluster.nodes[0].transport.is_connected(cluster.homes[CUSTODIAN].node_id),
        lambda linked: not linked,
    )
    status, body, _ = await s.fetch(anchor2.hash, ticket2)
    assert (status, _code(body)) == (502, "custodian-unreachable"), body
    status, body = await get_json(http, cluster.homes[0].api_url + "/v1/info")
    assert status == 200, body


async def test_a_restart_finishes_an_erasure_the_store_missed(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession
) -> None:
    """A record erased on chain whose document is still in the store (a crash between
    the block's commit and the store's erasure) is erased when the node starts."""
    cluster = make_cluster(1)
    await cluster.start(0)
    key = cluster.homes[0].member_key  # hospital-0: enrols, anchors and erases
    patient = nacl.signing.SigningKey.generate()
    txs = [
        build_tx(cluster.chain_id, "patient.enroll", {"patient": public_key_hex(patient)}, key, 1),
        build_tx(
            cluster.chain_id,
            "record.anchor",
            {
                "record_id": "rpt-9",
                "patient": public_key_hex(patient),
                "type": "Observation",
                "commitment": "ab" * 32,
                "version": 1,
            },
            key,
            2,
        ),
        build_tx(
            cluster.chain_id,
            "record.erase",
            {"record_id": "rpt-9", "reason": "entered-in-error"},
            key,
            3,
        ),
    ]
    for tx in txs:
        status, body = await post_tx(http, cluster.homes[0].api_url, tx.wire)
        assert status == 202, body
        await cluster.wait_committed([tx.hash], [0])
    exchange = cluster.nodes[0].documents
    assert exchange is not None
    leftover = "cd" * 32  # as if stored before the erasure and never erased
    exchange.store.put(leftover, "rpt-9", RESOURCE, bytes(32))
    assert exchange.store.status(leftover) == "stored"
    await cluster.stop(0)
    await cluster.start(0)
    restarted = cluster.nodes[0].documents
    assert restarted is not None and restarted.store.status(leftover) == "erased"
