"""Functional: every validator stopped with SIGTERM, under load, and started again."""

from __future__ import annotations

from tests.functional.framework import TestNetwork, wait_until


def test_all_validators_stopped_and_restarted_continue_from_last_height() -> None:
    """While transactions stream in, all four nodes get SIGTERM and exit 0. Restarted,
    each is at least at the height it had, with the same blocks; every tx a node had
    committed before the stop is committed on every node, as is every tx accepted
    after the restart; new transactions are committed above the old height on one
    chain, and no tx is committed twice."""
    net = TestNetwork(4, name="restart-all")
    with net:
        first = net.submit([0, 1, 2, 3], 100)
        net.wait_committed(first)
        with net.load(net.sign_anchors(500), targets=range(4), rate=200) as loader:
            wait_until("100 more txs accepted", lambda: loader.submitted, lambda n: n >= 100)
            heights = net.heights()
            chains = {i: net.chain_tx_hashes(i, h) for i, h in heights.items()}
            reported = set().union(*chains.values())
            blocks = net.block_hashes(0, heights[0])
            net.stop(0, 1, 2, 3)  # the loader keeps posting: refused while they are down
            loader.set_targets([])  # paused until the nodes are linked again (see restart())
            at_stop = loader.submitted
            net.log(f"stopped at heights {heights}, {len(reported)} txs seen committed")
            for i in range(4):
                net.start(i)
            for i in range(4):
                net.wait_ready(i)
            restarted = net.heights()
            assert all(restarted[i] >= heights[i] for i in range(4)), (heights, restarted)
            net.wait_connected()
            loader.set_targets(range(4))
            loader.wait_done()
        accepted = [a.tx_hash for a in loader.accepted]
        assert len(accepted) > at_stop, "no tx was accepted after the restart"
        net.wait_committed(sorted(reported))
        net.wait_committed(accepted[at_stop:])
        assert net.block_hashes(0, heights[0]) == blocks

        last = max(heights.values())
        new = net.submit([0, 1, 2, 3], 40)
        net.wait_committed(new)
        height = net.wait_same_height(at_least=last + 1)
        assert net.assert_same_chain() == height
        for i in range(4):
            chain = net.chain_tx_hashes(i, height)
            assert len(chain) == len(set(chain)), f"node{i} committed a tx twice"
            assert reported <= set(chain), f"node{i} lost committed txs"
