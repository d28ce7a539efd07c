"""A new primary that re-proposes a prepared value without holding its payload must
not propose that value's requests again at a later height.

Found by the chaos suite (docs/faults.md): after a view change, the new primary's
NEW-VIEW re-proposed a prepared block whose payload it had never received (the
view-change certificates carry no payloads); the requests of that block were
still in its own queue, so it proposed them again two heights later, and the
chain held the same transactions twice (the second copy executed as a replay).
"""

from __future__ import annotations

from collections import Counter

from consensus.messages import Commit, NewView, PrePrepare
from tests.unit.cluster import Cluster

BASE = 2_000  # ConsensusConfig.view_change_timeout_ms default


def test_a_reproposal_without_its_payload_keeps_its_requests_out_of_new_proposals() -> None:
    c = Cluster(4, batch_max_count=2)
    # node 1, the primary of view 1, never sees view 0's proposal, and view 0's
    # commits are lost: height 1 is prepared at nodes 0, 2, 3 only
    c.drop_if = lambda e: (
        (isinstance(e.msg, PrePrepare) and e.dst == 1)
        or (isinstance(e.msg, Commit) and e.msg.view == 0)
    )
    c.request(b"tx:a")
    c.request(b"tx:b")
    c.deliver_all()
    assert c.heights() == [0, 0, 0, 0]
    assert [r["prepared"] for r in c.replica(2).in_flight()] == [True]
    c.isolated.add(0)
    c.drop_if = None
    c.run(until=4 * BASE)
    (nv,) = [m for m in c.nodes[1].sent if isinstance(m, NewView)]
    assert [pp.height for pp in nv.pre_prepares] == [1]  # re-proposed, payload unknown to 1
    for i in (1, 2, 3):
        chain = [tx for block in c.nodes[i].blocks for tx in block.payload]
        twice = [tx for tx, k in Counter(chain).items() if k > 1]
        assert not twice, f"node {i} committed {twice} twice: {c.heights()}"
        assert sorted(chain) == [b"tx:a", b"tx:b"], (i, chain)
    c.assert_agreement()


def test_a_restarted_primary_does_not_propose_again_what_it_has_in_flight() -> None:
    """The primary proposes a block, its commits are lost, and it restarts (a crash,
    or a resume after a full disk) with its mempool handed to it again: the
    requests of the proposal it restored from its records must not go into a new
    proposal (found by the chaos suite: seed 4242, a full disk on the primary)."""
    c = Cluster(4, batch_max_count=2)
    c.drop_if = lambda e: isinstance(e.msg, Commit) and e.msg.view == 0
    c.request(b"tx:a")
    c.request(b"tx:b")
    c.deliver_all()
    assert c.heights() == [0, 0, 0, 0]
    assert [r["height"] for r in c.replica(0).in_flight()] == [1]
    c.crash(0)
    c.restart(0)  # re-fed its mempool: tx:a and tx:b again
    c.drop_if = None
    c.request(b"tx:c")
    c.request(b"tx:d")
    c.run(until=4 * BASE)
    for i in range(4):
        chain = [tx for block in c.nodes[i].blocks for tx in block.payload]
        twice = [tx for tx, k in Counter(chain).items() if k > 1]
        assert not twice, f"node {i} committed {twice} twice: {c.heights()}"
        assert sorted(chain) == [b"tx:a", b"tx:b", b"tx:c", b"tx:d"], (i, chain)
    c.assert_agreement()
