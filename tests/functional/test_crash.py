"""Functional: ``kill -9`` of validators, a backup under load and the primary."""

from __future__ import annotations

from tests.functional.framework import TestNetwork, wait_until


def test_kill9_of_a_backup_under_load_then_restart_catches_up() -> None:
    """A backup (node2) is SIGKILLed while transactions stream in; the other three keep
    committing; restarted, it catches up, and all four end with the same chain holding
    every accepted transaction. Before the kill the load moves off node2 and every tx
    node2 accepted is seen at the primary, so no accepted tx dies with its mempool."""
    net = TestNetwork(4, name="kill-backup")
    with net:
        _kill_backup_under_load(net)


def _kill_backup_under_load(net: TestNetwork) -> None:
    victim, others = 2, [0, 1, 3]
    txs = net.sign_anchors(600)
    with net.load(txs, targets=range(4), rate=150) as loader:
        wait_until("150 txs accepted", lambda: loader.submitted, lambda n: n >= 150)
        loader.set_targets(others)
        wait_until(
            f"every tx node{victim} accepted to be known at node0",
            lambda: [
                h for h in loader.accepted_by(victim) if net.tx_status(0, h)["status"] == "unknown"
            ],
            lambda unknown: not unknown,
        )
        at_kill = net.height(0)
        net.kill(victim)
        net.wait_for_height(at_kill + 3, nodes=others)
        net.log(f"height {net.height(0)} reached without node{victim}")
        net.restart(victim)
        loader.set_targets(range(4))
        loader.wait_done()
    assert not loader.errors, loader.errors[:5]
    hashes = [a.tx_hash for a in loader.accepted]
    assert len(hashes) == len(txs)
    net.wait_committed(hashes)
    height = net.wait_same_height()
    assert net.assert_same_chain() == height
    st = net.status(victim)
    assert st["syncing"] is False and st["peers"] == 3, st


def test_kill9_of_the_primary_changes_view_and_commits_new_txs() -> None:
    """The view-0 primary (node0) is SIGKILLed: the other three change view (view > 0,
    a new primary) and commit transactions submitted after the kill with one chain;
    node0, restarted, catches up, learns the view and commits with them again."""
    net = TestNetwork(4, name="kill-primary")
    with net:
        st = net.status(0)
        assert (st["view"], st["primary"]) == (0, 0), st
        before = net.submit([0, 1, 2, 3], 40)
        net.wait_committed(before)
        net.kill(0)
        rest = [1, 2, 3]
        after = net.submit(rest, 30)
        net.wait_committed(after, nodes=rest)
        views = {i: (s["view"], s["primary"]) for i in rest for s in [net.status(i)]}
        net.log(f"after the primary's crash: (view, primary) {views}")
        assert all(view > 0 and primary != 0 for view, primary in views.values()), views
        net.assert_same_chain(rest)

        net.restart(0)
        net.wait_connected()
        more = net.submit([0, 1, 2, 3], 20)
        net.wait_committed(more)
        net.wait_same_height()
        net.assert_same_chain()
        final = {i: net.status(i)["view"] for i in range(4)}
        assert len(set(final.values())) == 1 and final[0] > 0, final
