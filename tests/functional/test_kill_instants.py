"""Functional: ``kill -9`` at chosen instants, during a block sync and during a view change.

The chaos runs kill nodes at random instants; these two tests aim at the two
instants where a node holds the most half-done work, so that they are hit
every time:

* **during a block sync**: a validator that was down restarts behind by dozens
  of blocks, and its peers' links to it are slowed (a proxy bandwidth cap) so
  that the sync takes seconds; it is killed while ``/status`` says it is
  syncing, restarted, and must finish the sync with the very chain of the
  others;
* **during a view change**: the primary is cut off and the next primary's
  messages are lost, so the backups enter a view change that cannot complete;
  the next primary is killed in it (two of four left); then the old primary
  is reconnected, the three finish a view change, the killed node restarts,
  and all four converge with every transaction committed once.
"""

from __future__ import annotations

from typing import Any

from tests.chaos.proxy import grudge_isolate
from tests.functional.framework import TestNetwork, wait_until
from tests.functional.framework.httpclient import NodeUnreachable


def test_kill9_during_block_sync_then_restart_finishes_the_sync() -> None:
    net = TestNetwork(4, name="kill-in-sync", proxied=True, proxy_seed=3)
    with net:
        victim, others = 3, [0, 1, 2]
        first = net.submit(others, 20)
        net.wait_committed(first)
        net.kill(victim)
        behind = []
        for _ in range(15):  # many small batches: many blocks to sync
            batch = net.submit(others, 16)
            net.wait_committed(batch, nodes=others)
            behind += batch
        target = net.height(0)
        net.log(f"node{victim} is behind: the others are at height {target}")
        net.faults(lambda p: p.bandwidth(20_000, pairs=[(j, victim) for j in others]))
        net.start(victim)

        def status() -> dict[str, Any]:
            try:
                return net.status(victim)
            except NodeUnreachable:  # still starting
                return {}

        seen = wait_until(
            f"node{victim} to be syncing, below height {target}",
            status,
            lambda st: bool(st) and st.get("syncing") and st["height"] < target,
            interval=0.05,
            check=lambda: net.assert_running([victim]),
        )
        net.kill(victim)
        net.log(f"killed node{victim} during its sync, at height {seen['height']} of {target}")
        net.faults(lambda p: p.heal())
        net.restart(victim)
        net.wait_committed(first + behind)
        after = net.submit(range(4), 20)
        net.wait_committed(after)
        height = net.wait_same_height()
        assert net.assert_same_chain() == height


def test_kill9_of_the_next_primary_during_a_view_change_then_all_converge() -> None:
    net = TestNetwork(4, name="kill-in-vc", proxied=True, proxy_seed=4)
    with net:
        before = net.submit(range(4), 20)
        net.wait_committed(before)
        primary = int(net.status(0)["primary"])
        view = int(net.status(0)["view"])
        backups = [i for i in range(4) if i != primary]
        next_primary = (view + 1) % 4
        watcher = next(i for i in backups if i != next_primary)
        # the primary is cut off, and nothing the next primary sends arrives: the
        # backups enter the view change and stay in it (no NEW-VIEW reaches them)
        mute = {(next_primary, j) for j in range(4) if j != next_primary}
        net.faults(lambda p: p.block(grudge_isolate(4, primary) | mute))
        stuck = net.sign_anchors(10)
        net.submit(backups, stuck)  # pending work: the backups' timers run out
        wait_until(
            f"node{watcher} to be in a view change",
            lambda: net.admin_get(watcher, "/consensus"),
            lambda c: bool(c["in_view_change"]),
            interval=0.05,
        )
        net.kill(next_primary)
        net.log(f"killed node{next_primary}, the next primary, during the view change")
        net.faults(lambda p: p.heal())
        alive = [i for i in range(4) if i != next_primary]
        net.wait_committed([tx.hash for tx in stuck], nodes=alive)
        net.restart(next_primary)
        after = net.submit(range(4), 20)
        everything = before + [tx.hash for tx in stuck] + after
        net.wait_committed(everything)
        height = net.wait_same_height()
        assert net.assert_same_chain() == height
        chain = net.chain_tx_hashes(0, height)
        assert len(chain) == len(set(chain)), "a transaction is in the chain twice"
        assert set(everything) <= set(chain)
