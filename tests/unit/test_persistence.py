"""Persistence: votes are persisted before they leave, and a replica restored
from its records after a crash at any point never contradicts itself."""

from __future__ import annotations

import msgspec
import pytest

from consensus.actions import Persist
from consensus.messages import Commit, NewView, PrePrepare
from consensus.records import KEY_STABLE, KEY_VIEW, SlotRecord, StableRecord, ViewRecord, slot_key
from tests.unit.cluster import Cluster, Node, Solo, Vote, conflicts, vote_digest, votes_in

BASE = 2_000
_slot = msgspec.msgpack.Decoder(SlotRecord)
_view = msgspec.msgpack.Decoder(ViewRecord)
_stable = msgspec.msgpack.Decoder(StableRecord)


def justifies(records: dict[bytes, bytes], v: Vote) -> str | None:
    """Why the durable ``records`` do not justify vote ``v`` (None when they do)."""
    raw = records.get(slot_key(v.height))
    if raw is None:
        return "no slot record"
    rec = _slot.decode(raw)
    d = vote_digest(v)
    if isinstance(v, Commit):
        cert = rec.prepared
        if rec.commit_view != v.view or cert is None:
            return f"commit_view {rec.commit_view} / prepared {cert is not None}"
        if cert.pre_prepare.view != v.view or cert.pre_prepare.proposal.digest() != d:
            return "prepared certificate of another view or digest"
    else:
        accepted = rec.accepted_pre_prepare()
        if accepted is None or rec.accepted_view != v.view:
            return f"accepted view {rec.accepted_view}"
        if accepted.proposal.digest() != d:
            return "accepted another digest"
    if v.view > 0:
        raw_view = records.get(KEY_VIEW)
        if raw_view is None or _view.decode(raw_view).view < v.view:
            return "view not persisted"
    return None


def check_persist_before_send(node: Node, *, crashed: bool = False) -> None:
    """Walk the node's actions in driver order with a shadow of its records.

    - A vote sent for the first time has the Persist of its slot record earlier
      in the same action list, and that record justifies it (same view and
      digest; for a COMMIT the prepared certificate; for views > 0 the view).
      After a crash the first send may come from a later list (the list that
      persisted it was cut short): then the records must justify it.
    - A re-sent vote (after a restart, a retransmission, a NEW-VIEW push) is
      still justified by the records, unless its height is already below the
      stable checkpoint (its slot record was garbage-collected).
    """
    records: dict[bytes, bytes] = {}
    seen: set[tuple[type, int, int, bytes]] = set()
    persisted_in: dict[int, set[bytes]] = {}
    for call_id, a in node.trace:
        if isinstance(a, Persist):
            for key, value in a.records:
                persisted_in.setdefault(call_id, set()).add(key)
                if value is None:
                    records.pop(key, None)
                else:
                    records[key] = value
            continue
        for v in votes_in(a, node.index):
            vk = (type(v), v.view, v.height, vote_digest(v))
            if vk not in seen:
                seen.add(vk)
                assert crashed or slot_key(v.height) in persisted_in.get(call_id, set()), (
                    f"node {node.index}: first {v!r} without a Persist before it in its list"
                )
            elif v.height <= stable_height(records):
                continue
            why = justifies(records, v)
            assert why is None, f"node {node.index} sent {v!r} unjustified: {why}"


def stable_height(records: dict[bytes, bytes]) -> int:
    raw = records.get(KEY_STABLE)
    return 0 if raw is None else _stable.decode(raw).height


def script(c: Cluster) -> None:
    """Heights 1-2 commit in view 0 and height 3 is prepared but its commits are
    lost; primary 0 falls silent; view 1 re-proposes height 3 and commits tx:4;
    0 comes back and tx:5, tx:6 commit. Checkpoints every 2 heights."""
    c.drop_if = lambda e: isinstance(e.msg, Commit) and e.msg.view == 0 and e.msg.height == 3
    for tx in (b"tx:1", b"tx:2", b"tx:3"):
        c.request(tx)
    c.run(until=300)
    c.isolated.add(0)
    c.request(b"tx:4", to=[1, 2, 3])
    c.run(until=3 * BASE)
    c.isolated.clear()
    c.drop_if = None
    c.request(b"tx:5")
    c.request(b"tx:6")
    c.run(until=8 * BASE)


def new_cluster() -> Cluster:
    c = Cluster(4, batch_max_count=1, checkpoint_interval=2, watermark_window=8)
    c.auto_sync = True
    return c


def test_scripted_run_without_crash() -> None:
    """The script itself: a view change re-proposing prepared height 3, every
    node at height 6, views 1, no fork, and every vote persisted before sending."""
    c = new_cluster()
    script(c)
    assert c.heights() == [6, 6, 6, 6]
    assert [n.replica.view for n in c.nodes] == [1, 1, 1, 1]
    new_views = {m.view: m for m in c.nodes[1].sent if isinstance(m, NewView)}
    assert list(new_views) == [1]
    assert [pp.height for pp in new_views[1].pre_prepares] == [3]
    c.assert_agreement()
    for node in c.nodes:
        check_persist_before_send(node)


def test_primary_persists_before_its_pre_prepare() -> None:
    """The primary's action list is Persist(slot h) then Broadcast(PRE-PREPARE h)."""
    s = Solo(4, 0, batch_max_count=1)
    out = s.request(b"tx:a")
    kinds = [type(a).__name__ for a in out]
    assert kinds[:2] == ["Persist", "Broadcast"]
    p = out[0]
    assert isinstance(p, Persist) and p.records[0][0] == slot_key(1)


def _actions_of(node_index: int) -> int:
    c = new_cluster()
    script(c)
    return len(c.nodes[node_index].trace)


@pytest.mark.parametrize("who", [0, 1, 2])
def test_crash_at_every_step_never_yields_conflicting_votes(who: int) -> None:
    """For every k, node ``who`` (0: old primary, 1: new primary, 2: backup) is
    killed after carrying out k actions of the script (the rest of its action
    list is lost) and restarted at once from its records and executed chain.
    Across the whole run it never sends two votes for one (phase, height, view)
    with different digests, every vote it sends is justified by its records,
    and no two nodes deliver different blocks at one height."""
    total = _actions_of(who)
    assert total > 50
    for k in range(total + 1):
        c = new_cluster()
        c.crash_after(who, k)
        script(c)
        node = c.nodes[who]
        bad = conflicts(node.votes)
        assert not bad, f"crash after {k} actions: conflicting votes {bad[0]}"
        check_persist_before_send(node, crashed=True)
        c.assert_agreement()


def test_restart_resends_identical_votes() -> None:
    """A backup restarted from its records re-broadcasts exactly the votes it had
    sent for its in-flight height (same view, height and digest) and nothing else."""
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:a",))
    out = s.feed(pp, c.prepare(0, 1, pp.proposal.digest(), 1))
    before = [v for a in out for v in votes_in(a)]
    assert [type(v).__name__ for v in before] == ["Prepare", "Commit"]
    again = [v for a in s.restart(now=10) for v in votes_in(a)]
    assert again == before


def test_prepared_slot_record_stores_the_payload_once() -> None:
    """Once prepared, the slot record holds the pre-prepare (and its payload) only
    inside the prepared certificate, not a second time as ``accepted``; restored,
    it still yields the accepted pre-prepare. A record in the older layout (the
    pre-prepare in both places, no flag) decodes the same way."""
    s = Solo(4, 3)
    c = s.craft
    marker = b"tx:" + b"x" * 400  # a request the simulated payload rules accept
    pp = c.pre_prepare(0, 1, (marker,))
    s.feed(pp, c.prepare(0, 1, pp.proposal.digest(), 1))
    raw = s.records[slot_key(1)]
    assert raw.count(marker) == 1
    rec = _slot.decode(raw)
    assert rec.accepted is None and rec.accepted_in_prepared
    assert rec.accepted_pre_prepare() == pp
    old = msgspec.msgpack.encode(
        (rec.accepted_view, pp, rec.prepared, rec.commit_view)  # no trailing flag
    )
    legacy = _slot.decode(old)
    assert not legacy.accepted_in_prepared and legacy.accepted_pre_prepare() == pp
    s.records[slot_key(1)] = old
    again = [v for a in s.restart(now=10) for v in votes_in(a)]
    assert [type(v).__name__ for v in again] == ["Prepare", "Commit"]


def test_restarted_backup_refuses_a_conflicting_pre_prepare() -> None:
    """After a restart a backup still refuses to prepare a second proposal for a
    (height, view) it already prepared, even though its in-memory tallies are gone."""
    s = Solo(4, 3)
    c = s.craft
    s.feed(c.pre_prepare(0, 1, (b"tx:a",)))
    s.restart(now=10)
    out = s.feed(c.pre_prepare(0, 1, (b"tx:b",)))
    assert not [v for a in out for v in votes_in(a)]


def test_restarted_primary_does_not_repropose_a_height() -> None:
    """A primary restarted after proposing height 1 proposes its next request at
    height 2, never a different height-1 proposal."""
    s = Solo(4, 0, batch_max_count=1)
    s.request(b"tx:a")
    s.restart(now=10)
    out = s.request(b"tx:b", now=11)
    pps = [v for a in out for v in votes_in(a) if isinstance(v, PrePrepare)]
    heights = [pp.height for pp in pps]
    assert 2 in heights
    for pp in pps:
        if pp.height == 1:
            assert pp.payload == (b"tx:a",)
