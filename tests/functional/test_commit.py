"""Functional: four validator processes commit 1,000 transactions submitted to all of them."""

from __future__ import annotations

import time

from tests.functional.framework import TestNetwork

TXS = 1000


def test_four_validators_commit_1000_txs_submitted_round_robin() -> None:
    """1,000 pre-signed data.anchor txs posted round-robin to the four nodes' client APIs
    are all committed (ledger result ok) on every node, each exactly once, and every
    node ends with the same chain (equal block hashes at one common height)."""
    net = TestNetwork(4, name="commit")
    with net:
        txs = net.sign_anchors(TXS)
        started = time.monotonic()
        hashes = net.submit([0, 1, 2, 3], txs)
        net.log(f"{TXS} txs accepted in {time.monotonic() - started:.1f}s")
        net.wait_committed(hashes)
        net.log(f"{TXS} txs committed on every node in {time.monotonic() - started:.1f}s")
        height = net.wait_same_height()
        assert net.assert_same_chain() == height
        for i in range(4):
            chain = net.chain_tx_hashes(i, height)
            assert sorted(chain) == sorted(hashes), f"node{i}: {len(chain)} txs in its chain"
        for k, tx_hash in enumerate(hashes):
            st = net.tx_status(k % 4, tx_hash)
            assert st["status"] == "committed" and st["result"]["status"] == "ok", (tx_hash, st)
