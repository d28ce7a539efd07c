"""Normal-case operation: pre-prepare, prepare, commit, in-order delivery."""

from __future__ import annotations

from collections.abc import Sequence

from consensus.actions import Action, Deliver
from consensus.messages import Commit, Prepare, PrePrepare
from consensus.quorum import verify_commit_certificate
from tests.unit.cluster import Cluster, Solo, sent_messages


def delivered(actions: Sequence[Action]) -> list[int]:
    return [a.block.height for a in actions if isinstance(a, Deliver)]


def test_single_replica_commits_alone() -> None:
    """n=1 (f=0, quorum 1): the lone primary batches on its batch timer and
    commits without any message exchange."""
    c = Cluster(1)
    c.request(b"tx:a")
    c.request(b"tx:b")
    assert c.heights() == [0], "a non-full batch waits for batch_timeout_ms"
    c.run(until=c.config.batch_timeout_ms)
    assert c.heights() == [1]
    block = c.nodes[0].blocks[0]
    assert block.payload == (b"tx:a", b"tx:b")
    assert not c.queue
    verify_commit_certificate(c.config, c.verifier, block.proposal, block.certificate)


def test_single_replica_full_batch_commits_at_once() -> None:
    """n=1 with batch_max_count=1: every request is a full batch, committed at once."""
    c = Cluster(1, batch_max_count=1)
    for i in range(5):
        c.request(b"tx:%d" % i)
    assert c.heights() == [5]
    assert [b.payload for b in c.nodes[0].blocks] == [(b"tx:%d" % i,) for i in range(5)]


def test_four_replicas_commit_with_perfect_delivery() -> None:
    """n=4, every message delivered: all replicas deliver the same blocks in order,
    each with a commit certificate that verifies, and nobody changes view."""
    c = Cluster(4, batch_max_count=2)
    for i in range(7):
        c.request(b"tx:%d" % i)
    c.run(until=100)
    assert c.heights() == [4, 4, 4, 4]
    c.assert_agreement()
    payloads = [tx for b in c.nodes[0].blocks for tx in b.payload]
    assert payloads == [b"tx:%d" % i for i in range(7)]
    for node in c.nodes:
        assert [b.height for b in node.blocks] == [1, 2, 3, 4]
        assert node.replica.view == 0
        for b in node.blocks:
            verify_commit_certificate(c.config, c.verifier, b.proposal, b.certificate)
            assert len({x.sender for x in b.certificate}) >= c.config.quorum
        assert not node.events, f"node {node.index}: unexpected {node.events}"


def test_backup_votes_prepare_then_commit() -> None:
    """A backup answers a valid PRE-PREPARE with one PREPARE, and sends COMMIT only
    once it holds quorum-1 matching prepares (its own counts)."""
    s = Solo(4, 3)
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",))
    out = s.feed(pp)
    (prep,) = sent_messages(out)
    assert isinstance(prep, Prepare) and prep.digest == pp.proposal.digest()
    assert (prep.view, prep.height, prep.sender) == (0, 1, 3)
    assert not sent_messages(s.feed(pp)), "a duplicate pre-prepare gets no second vote"
    out = s.feed(s.craft.prepare(0, 1, pp.proposal.digest(), 1))
    (commit,) = sent_messages(out)
    assert isinstance(commit, Commit) and commit.digest == pp.proposal.digest()


def test_delivery_needs_a_quorum_of_commits_and_is_in_height_order() -> None:
    """Commits for h+1 arriving before those of h: nothing is delivered until h has
    a quorum of commits (quorum-1 is not enough); then h and h+1 come out in order,
    each with a certificate that verifies."""
    s = Solo(4, 3)
    c = s.craft
    pps = [c.pre_prepare(0, h, (b"tx:%d" % h,)) for h in (1, 2)]
    digests = [pp.proposal.digest() for pp in pps]
    s.feed(*pps)
    out = s.feed(*(c.prepare(0, h, digests[h - 1], 1) for h in (1, 2)))
    assert len(sent_messages(out, Commit)) == 2
    # quorum (3) of commits for height 2: 0, 1 and our own
    out = s.feed(c.commit(0, 2, digests[1], 0), c.commit(0, 2, digests[1], 1))
    assert not delivered(out), "height 2 must wait for height 1"
    # quorum-1 for height 1: our own and 0's
    out = s.feed(c.commit(0, 1, digests[0], 0))
    assert not delivered(out), "two commits are not a quorum of four"
    out = s.feed(c.commit(0, 1, digests[0], 2))
    assert delivered(out) == [1, 2]
    assert s.replica.height == 2
    for a in out:
        if isinstance(a, Deliver):
            b = a.block
            verify_commit_certificate(s.config, s.scheme.verifier(), b.proposal, b.certificate)


def test_commit_quorum_for_a_digest_we_did_not_accept_still_delivers() -> None:
    """Commits are tallied for every view: a backup that saw the pre-prepare but
    missed every prepare delivers on a quorum of other replicas' commits."""
    s = Solo(4, 3)
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",))
    s.feed(pp)
    d = pp.proposal.digest()
    out = s.feed(*(s.craft.commit(0, 1, d, i) for i in (0, 1, 2)))
    assert delivered(out) == [1]
    assert not sent_messages(out, Commit), "it never prepared, so it never commits"


def test_primary_pipelines_and_backups_follow() -> None:
    """The primary's pre-prepares for heights 1-3 all go out before any vote
    returns (pipelining); a broadcast PRE-PREPARE counts as the primary's prepare
    (it never sends a PREPARE), and everything commits once delivered."""
    c = Cluster(4, batch_max_count=1)
    for i in range(3):
        c.request(b"tx:%d" % i, to=[0])
    primary_sent = c.nodes[0].sent
    assert [type(m) for m in primary_sent] == [PrePrepare] * 3
    assert [m.height for m in primary_sent if isinstance(m, PrePrepare)] == [1, 2, 3]
    c.deliver_all()
    assert c.heights() == [3, 3, 3, 3]
    assert not c.nodes[0].sent_of(Prepare)
    assert [m.height for m in c.nodes[0].sent_of(Commit) if isinstance(m, Commit)] == [1, 2, 3]
    c.assert_agreement()


def test_reversed_delivery_still_commits_in_order() -> None:
    """The network delivers every batch of queued messages newest first (commits
    before prepares before pre-prepares): all replicas still deliver heights 1-4
    in order, with the same blocks."""
    c = Cluster(4, batch_max_count=1)
    for i in range(4):
        c.request(b"tx:%d" % i)
    for _ in range(1_000):
        if not c.queue:
            break
        c.reorder(lambda q: list(reversed(q)))
        c.step()
    assert c.heights() == [4, 4, 4, 4]
    assert all([b.height for b in n.blocks] == [1, 2, 3, 4] for n in c.nodes)
    c.assert_agreement()


def test_quorum_commits_without_the_fourth_replica() -> None:
    """Every message to or from replica 3 is dropped: replicas 0-2 (a quorum of
    3) commit on their own; replica 3 delivers nothing."""
    c = Cluster(4, batch_max_count=1)
    c.request(b"tx:a")
    while c.queue:
        c.drop_where(lambda e: 3 in (e.src, e.dst))
        c.step()
    assert c.heights() == [1, 1, 1, 0]
    c.assert_agreement()
