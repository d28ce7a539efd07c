"""Functional: one validator runs as a Byzantine process (``tests.chaos.byzantine_node``).

Four validators start honest; then node k is stopped and started again as the
test-only Byzantine program (the real node, its signing key, its replica, with
what it sends twisted: see that module's docstring). Transactions are
submitted to the three honest nodes throughout, and every test checks what
PBFT promises with f = 1 Byzantine validator out of 4: the honest nodes commit
every transaction, they hold one chain (and the Byzantine node's own replica,
honest underneath, holds a prefix of it), and none of them crashes. Each test
then checks that the Byzantine process really misbehaved and that the honest
nodes noticed it:

* ``equivocate`` as the primary of the view: conflicting PRE-PREPAREs, and the
  honest nodes report equivocation evidence against it
  (``hygeia_equivocation_evidence_total{validator=k, type=PrePrepare}``);
* ``conflicting_votes``: conflicting PREPAREs and COMMITs, reported as
  evidence (of PREPAREs at least: a replica ignores the COMMITs of a height it
  delivered, and the three honest ones deliver without it);
* ``stale_view_change``: replays of its own old VIEW-CHANGEs and messages
  across two real view changes (the primary of the view is stopped, twice);
* ``garbage``: a flood of malformed and oversized frames; every honest node
  scores it and bans it, and commits on meanwhile;
* ``vote_all`` and (under the ``chaos`` marker, ``make chaos``) every other
  behaviour of ``byzantine_node.SUPPORTED``: through checkpoints and a view
  change to the Byzantine node's view (its primary), with safety and
  commits checked as above.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.byzantine_node import COVERED, SUPPORTED
from tests.functional.framework import TestNetwork, wait_until

BYZANTINE = "tests.chaos.byzantine_node"
N = 4
ROUNDS = 20  # rounds of submissions at most, until the honest nodes ban the Byzantine one
ROUND_TXS = 10


def _become_byzantine(net: TestNetwork, k: int, behaviour: str, *, linked: bool = True) -> None:
    """Stop node ``k`` and start it again as the Byzantine program; wait until it
    answers (and, if ``linked``, until every node is linked again)."""
    net.stop(k)
    net.start(k, module=BYZANTINE, env={"CHAOS_BYZANTINE": behaviour})
    net.wait_ready(k)
    if linked:
        net.wait_connected()
    net.log(f"node{k} runs as a Byzantine process: {behaviour}")


def _restart_honest(net: TestNetwork, i: int, honest: Sequence[int]) -> None:
    """Start the stopped honest node ``i`` again; wait until it is linked to the other
    honest nodes (not to the Byzantine one, which they may have banned)."""
    net.start(i)
    net.wait_ready(i)
    net.wait_connected(honest)


def _acted(net: TestNetwork, k: int, act: str) -> bool:
    """Whether the Byzantine node ``k`` logged the act (``byzantine_node.Acts``)."""
    return net.nodes[k].log_contains(f'"act": "{act}"')


def _samples(net: TestNetwork, i: int, name: str) -> list[tuple[dict[str, str], float]]:
    """Node ``i``'s ``/metrics`` samples of ``name``: (labels, value)."""
    text = net.admin_get(i, "/metrics")
    assert isinstance(text, str), text
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def _evidence(net: TestNetwork, i: int) -> dict[tuple[str, str], float]:
    """Node ``i``'s equivocation evidence, by (validator index, message type)."""
    samples = _samples(net, i, "hygeia_equivocation_evidence_total")
    return {(labels["validator"], labels["type"]): n for labels, n in samples}


def _wait_evidence(net: TestNetwork, honest: Sequence[int], k: int, kinds: set[str]) -> None:
    """Until the honest nodes together report evidence of every type of ``kinds``
    against validator ``k``; never against one of themselves."""

    def seen() -> dict[int, dict[tuple[str, str], float]]:
        return {i: _evidence(net, i) for i in honest}

    state = wait_until(
        f"equivocation evidence of types {sorted(kinds)} against node{k} on nodes {honest}",
        seen,
        lambda ev: kinds <= {t for e in ev.values() for (v, t) in e if v == str(k)},
        check=lambda: net.assert_running(honest),
    )
    net.log(f"evidence by honest node: {state}")
    wrongly = {i: e for i, e in state.items() for (v, _) in e if v != str(k)}
    assert not wrongly, f"evidence against an honest validator: {wrongly}"


def _check_chains(net: TestNetwork, honest: Sequence[int], k: int) -> None:
    """One chain on the honest nodes (at one height), and the Byzantine node's blocks
    are a prefix of it."""
    height = net.wait_same_height(honest)
    assert net.assert_same_chain(honest) == height
    net.assert_same_chain([*honest, k])
    net.log(f"one chain on nodes {list(honest)} at height {height}; node{k} at {net.height(k)}")


def _banned(net: TestNetwork, honest: Sequence[int], k_id: str) -> dict[int, tuple[int, bool]]:
    """Per honest node: how many penalties it gave node ``k_id``, and whether it bans it."""
    out = {}
    for i in honest:
        peer = next(p for p in net.admin_get(i, "/peers")["peers"] if p["node_id"] == k_id)
        out[i] = (int(peer["penalties"]), peer["banned_until_mono"] is not None)
    return out


def _commit_until(
    net: TestNetwork, honest: Sequence[int], what: str, done: Callable[[], bool]
) -> list[str]:
    """Submit rounds of anchors to the honest nodes, each committed on all of them
    before the next, until ``done()``; at most ``ROUNDS`` rounds. The hashes."""
    hashes: list[str] = []
    for r in range(ROUNDS):
        batch = net.submit(list(honest), ROUND_TXS)
        net.wait_committed(batch, nodes=honest)
        hashes += batch
        if done():
            net.log(f"round {r}: {what}")
            return hashes
    raise AssertionError(f"not {what} after {ROUNDS} rounds of {ROUND_TXS} txs")


def test_equivocating_primary_is_reported_and_the_honest_nodes_commit_on() -> None:
    with TestNetwork(N, name="byz-equivocate") as net:
        warm = net.submit(list(range(N)), 8)
        net.wait_committed(warm)
        k = int(net.status(0)["primary"])
        honest = [i for i in range(N) if i != k]
        _become_byzantine(net, k, "equivocate")
        # the network was idle while it restarted: no view change, it still leads
        primaries = {i: net.status(i)["primary"] for i in honest}
        assert set(primaries.values()) == {k}, primaries

        # its evidence costs it points (node.net.penalties) until every honest node bans it
        k_id = str(net.status(k)["node_id"])
        hashes = _commit_until(
            net,
            honest,
            f"every honest node bans node{k}",
            lambda: all(banned for _, banned in _banned(net, honest, k_id).values()),
        )
        _wait_evidence(net, honest, k, {"PrePrepare"})
        assert _acted(net, k, "sent other PrePrepare")
        # the honest nodes left the Byzantine primary's view for one of their own
        views = {i: (s["view"], s["primary"]) for i in honest for s in [net.status(i)]}
        net.log(f"(view, primary) of the honest nodes: {views}")
        assert all(view > 0 and primary != k for view, primary in views.values()), views
        after = net.submit(honest, 20)
        net.wait_committed(hashes + after, nodes=honest)
        _check_chains(net, honest, k)


def test_conflicting_votes_are_reported_and_the_honest_nodes_commit_on() -> None:
    with TestNetwork(N, name="byz-votes") as net:
        k = N - 1  # a backup of view 0
        honest = [i for i in range(N) if i != k]
        _become_byzantine(net, k, "conflicting_votes")
        # once a node bans it, it stops voting for that node's proposals: so not all
        # ban it, but the first to see two of its votes for a height reports them
        k_id = str(net.status(k)["node_id"])
        hashes = _commit_until(
            net,
            honest,
            f"an honest node bans node{k}",
            lambda: any(banned for _, banned in _banned(net, honest, k_id).values()),
        )
        _wait_evidence(net, honest, k, {"Prepare"})
        assert _acted(net, k, "sent other Prepare") and _acted(net, k, "sent other Commit")
        after = net.submit(honest, 20)
        net.wait_committed(hashes + after, nodes=honest)
        _check_chains(net, honest, k)


def test_stale_view_change_replays_across_view_changes_are_harmless() -> None:
    with TestNetwork(N, name="byz-stale") as net:
        k = N - 1  # never the primary of the views 0, 1, 2 this test goes through
        honest = [i for i in range(N) if i != k]
        _become_byzantine(net, k, "stale_view_change")
        hashes = net.submit(honest, 10)
        net.wait_committed(hashes, nodes=honest)
        for primary in (0, 1):  # stop the primary of view 0, then of view 1
            assert net.status(k)["primary"] == primary, net.status(k)
            net.stop(primary)
            rest = [i for i in honest if i != primary]
            batch = net.submit(rest, 20)
            net.wait_committed(batch, nodes=rest)
            _restart_honest(net, primary, honest)
            hashes += batch
            net.log(f"view change past the stopped node{primary}: {net.status(rest[0])}")
        wait_until(
            f"node{k} to replay a VIEW-CHANGE of a view it has left",
            lambda: _acted(net, k, "sent other ViewChange"),
            check=lambda: net.assert_running(range(N)),
        )
        after = net.submit(honest, 20)
        net.wait_committed(hashes + after, nodes=honest)
        _check_chains(net, honest, k)
        assert all(net.status(i)["view"] >= 2 for i in honest)
        assert all(not e for i in honest for e in [_evidence(net, i)]), "replays are no evidence"


def test_garbage_flood_gets_the_node_banned_and_the_honest_nodes_commit_on() -> None:
    with TestNetwork(N, name="byz-garbage") as net:
        k = 1
        honest = [i for i in range(N) if i != k]
        k_id = str(net.status(k)["node_id"])
        # the flood starts with the node: it may be banned before all its links are up
        _become_byzantine(net, k, "garbage", linked=False)
        during = net.submit(honest, 40)
        state = wait_until(
            f"every honest node to ban node{k} (penalties, banned)",
            lambda: _banned(net, honest, k_id),
            lambda s: all(banned for _, banned in s.values()),
            check=lambda: net.assert_running(range(N)),
        )
        net.log(f"(penalties, banned) of node{k} by honest node: {state}")
        net.wait_committed(during, nodes=honest)
        assert _acted(net, k, "garbage bad_signature") and _acted(net, k, "garbage oversized")
        refused = Counter[str]()
        for i in honest:
            for labels, n in _samples(net, i, "hygeia_rejected_frames_total"):
                refused[labels["reason"]] += int(n)
        net.log(f"frames the honest nodes refused, by reason: {dict(refused)}")
        assert {"malformed", "consensus-sender", "bad-signature"} <= {
            r for r, n in refused.items() if n
        }
        assert any(net.nodes[i].log_contains('"reason": "oversized frame"') for i in honest)
        net.wait_connected(honest)
        after = net.submit(honest, 20)
        net.wait_committed(after, nodes=honest)
        _check_chains(net, honest, k)


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(b, marks=() if b in COVERED else pytest.mark.chaos)
        for b in SUPPORTED
        if b not in ("equivocate", "conflicting_votes", "stale_view_change", "garbage")
    ],
)
def test_byzantine_behaviour_through_checkpoints_and_a_view_change(behaviour: str) -> None:
    """Node 1 misbehaves while the honest nodes pass a checkpoint (so its checkpoints
    go out), and while the primary of view 0 is stopped, so that the view changes
    to view 1, whose primary it is (its VIEW-CHANGE and NEW-VIEW go out); node 0
    is started again, and every transaction commits on the honest nodes."""
    with TestNetwork(N, name=f"byz-{behaviour}") as net:
        k = 1
        honest = [i for i in range(N) if i != k]
        # bad_sig is banned at its first messages: maybe before all its links are up
        _become_byzantine(net, k, behaviour, linked=behaviour != "bad_sig")
        blocks = int(net.status(0)["height"])
        hashes: list[str] = []
        checkpoint = 16  # consensus.config.ConsensusConfig.checkpoint_interval
        while net.height(0) < blocks + checkpoint + 1:
            batch = net.submit(honest, 1)  # one block each
            net.wait_committed(batch, nodes=honest)
            hashes += batch
        net.stop(0)
        rest = [i for i in honest if i != 0]
        hashes += net.submit(rest, ROUND_TXS)
        wait_until(
            f"nodes {rest} to leave view 0",
            lambda: {i: net.admin_get(i, "/consensus")["view"] for i in rest},
            lambda views: all(v >= 1 for v in views.values()),
            check=lambda: net.assert_running(rest),
        )
        _restart_honest(net, 0, honest)
        net.wait_committed(hashes, nodes=honest)
        after = net.submit(honest, ROUND_TXS)
        net.wait_committed(after, nodes=honest)
        _check_chains(net, honest, k)
        views = {i: net.status(i)["view"] for i in honest}
        net.log(f"views of the honest nodes: {views}; node{k} acts: {_acts(net, k)}")


def _acts(net: TestNetwork, k: int) -> list[str]:
    """The acts node ``k`` logged (``byzantine_node.Acts``), each once."""
    acts: set[str] = set()
    for line in net.nodes[k].log_path.read_text(encoding="utf-8").splitlines():
        if '"event": "byzantine act"' in line:
            acts.add(json.loads(line)["act"])
    return sorted(acts)
