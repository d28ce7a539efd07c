"""Functional: a network partition through the chaos proxies (``TestNetwork(proxied=True)``).

Four validators whose peer links all go through ``tests.chaos.proxy`` proxies.
The primary is isolated (every link to and from it stalls, as a lost network
would); the other three change view and commit on; after the heal every node
converges on one chain, and every transaction a node reported committed is at
the same height and index on every node (``tests.chaos.checker`` over a small
history recorded with ``tests.chaos.history``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.chaos.checker import ChainBlock, check_all, history_stats
from tests.chaos.history import HistoryWriter, Op, read_history
from tests.functional.framework import TestNetwork, wait_until

READER = 100  # history client id of the status reads on node i: READER + i


def _submit(
    net: TestNetwork, history: HistoryWriter, nodes: Sequence[int], count: int
) -> list[str]:
    """Submit ``count`` anchors round-robin to ``nodes`` (each must be accepted), recorded
    as one ``submit`` op per tx (client k for the k-th tx of the batch)."""
    txs = net.sign_anchors(count)
    invokes = [
        history.invoke(k, "submit", tx.hash, nodes[k % len(nodes)]) for k, tx in enumerate(txs)
    ]
    net.submit(list(nodes), txs)  # raises unless every one was accepted (202)
    for inv in invokes:
        history.complete(inv, "ok", status="accepted", code=202)
    return [tx.hash for tx in txs]


def _read(
    net: TestNetwork, history: HistoryWriter, nodes: Sequence[int], hashes: Sequence[str]
) -> None:
    """Read the status of every tx on every one of ``nodes``; each must be committed."""
    for i in nodes:
        for h in hashes:
            inv = history.invoke(READER + i, "status", h, i)
            st = net.tx_status(i, h)
            history.complete(
                inv, "ok", status=st["status"], height=st["height"], index=st["index"], code=200
            )
            assert st["status"] == "committed", (i, h, st)


def test_isolated_primary_the_majority_commits_and_all_converge_after_heal() -> None:
    net = TestNetwork(4, name="partition", proxied=True, proxy_seed=7)
    with net:
        path = net.dir / "history.jsonl"
        with HistoryWriter(path) as history:
            _partition_primary(net, history)
        ops = read_history(path)
        _check(net, ops)


def _partition_primary(net: TestNetwork, history: HistoryWriter) -> None:
    everyone = [0, 1, 2, 3]
    before = _submit(net, history, everyone, 30)
    net.wait_committed(before)
    _read(net, history, everyone, before)

    st = net.status(0)
    victim = int(st["primary"])
    rest = [i for i in everyone if i != victim]
    fault = f"isolate node={victim}"
    history.nemesis(0, "start", fault)
    net.faults(lambda p: p.isolate(victim))
    at_isolation = net.height(victim)
    net.log(f"isolated the primary node{victim} at height {at_isolation}")

    during = _submit(net, history, rest, 30)
    net.wait_committed(during, nodes=rest)
    _read(net, history, rest, during)
    views = {i: (s["view"], s["primary"]) for i in rest for s in [net.status(i)]}
    net.log(f"the majority committed without node{victim}: (view, primary) {views}")
    assert all(view > 0 and primary != victim for view, primary in views.values()), views
    cut_off = [h for h in during if net.tx_status(victim, h)["status"] == "committed"]
    assert not cut_off, f"node{victim} committed txs while isolated: {cut_off[:3]}"
    net.assert_same_chain(rest)
    # stay isolated until the stalled links are dropped (websocket heartbeat), so the
    # heal also has to link node{victim} again, through the proxies
    wait_until(
        f"the majority's links to node{victim} to drop",
        lambda: {i: net.status(i)["peers"] for i in rest},
        lambda peers: all(p == len(rest) - 1 for p in peers.values()),
    )

    net.faults(lambda p: p.heal())
    history.nemesis(0, "end", fault)
    net.log("healed")
    net.wait_connected()
    after = _submit(net, history, everyone, 20)
    net.wait_committed(after)
    height = net.wait_same_height()
    assert net.assert_same_chain() == height
    _read(net, history, everyone, before + during + after)
    net.assert_links_proxied()
    final = {i: net.status(i)["view"] for i in everyone}
    assert len(set(final.values())) == 1 and final[victim] > 0, final


def _check(net: TestNetwork, ops: list[Op]) -> None:
    height = net.wait_same_height()
    chains = {
        i: [ChainBlock.from_api(net.block(i, h)) for h in range(1, height + 1)] for i in range(4)
    }
    hashes = {i: [b.hash for b in chain] for i, chain in chains.items()}
    assert all(hs == hashes[0] for hs in hashes.values()), "block hashes differ between nodes"
    violations = check_all(ops, chains, n=4, recovery_bound_s=120.0)
    assert not violations, "\n".join(map(str, violations))
    stats = history_stats(ops)
    net.log(f"history: {stats}")
    assert stats["txs.accepted"] == 80 and stats["txs.accepted_never_seen_in_chain"] == 0, stats
