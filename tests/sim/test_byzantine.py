"""Byzantine behaviours twist outbound traffic but only ever sign with their own key;
the real replica refuses what they forge, and the attack scenarios keep safety,
liveness and bounded replica memory."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from consensus.actions import Rejected
from consensus.config import ConsensusConfig
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    sign_message,
)
from consensus.replica import Replica
from node.sim import report
from node.sim.byzantine import (
    FORGED_NEW_VIEWS,
    FORGED_VIEW_CHANGES,
    LIE_HEIGHT,
    BadCheckpoint,
    Behaviour,
    FloodViews,
    ForgeNewView,
    ForgeViewChange,
    Oversized,
    StaleViewChange,
    make_behaviour,
)
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from node.sim.engine import Simulation
from node.sim.network import FrameLimit
from node.sim.scenario import ByzantineSpec, load
from tests.sim.helpers import SCENARIO_DIR

CONFIG = ConsensusConfig(chain_id="test", n=4)
SCHEME = KeyedHashScheme(4, 0)
RULES = SimPayloadRules()
VERIFY = SCHEME.verifier()


class Recorder:
    def __init__(self) -> None:
        self.posts: list[tuple[int, int, Any, int]] = []

    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None:
        self.posts.append((src, dst, msg, extra_delay))


def behaviour(kind: str, node: int = 0, delay_ms: int = 0) -> Behaviour:
    spec = ByzantineSpec(node, kind, delay_ms)
    return make_behaviour(spec, CONFIG, SCHEME.signer(node), RULES, random.Random(1))


def own_pre_prepare() -> PrePrepare:
    payload = (b"tx:1:aaaa", b"tx:2:bbbb")
    proposal = Proposal("test", 1, 5000, 0, RULES.payload_root(payload))
    pp = PrePrepare(0, proposal, payload, 0)
    return PrePrepare(0, proposal, payload, 0, SCHEME.signer(0).sign(pp.signing_bytes("test")))


def valid(msg: Any) -> bool:
    return VERIFY.verify(msg.sender, msg.signing_bytes("test"), msg.sig)


def test_equivocating_primary_sends_two_signed_proposals():
    out = Recorder()
    pp = own_pre_prepare()
    behaviour("equivocate").transmit(out, (1, 2, 3), pp)
    sent = {dst: msg for _, dst, msg, _ in out.posts}
    assert sorted(sent) == [1, 2, 3]
    digests = {m.proposal.digest() for m in sent.values()}
    assert len(digests) == 2
    assert all(valid(m) for m in sent.values())
    assert all(RULES.payload_root(m.payload) == m.proposal.payload_root for m in sent.values())
    # other messages pass through untouched
    out2 = Recorder()
    prep = Prepare(0, 1, b"d" * 32, 0, b"s")
    behaviour("equivocate").transmit(out2, (1, 2, 3), prep)
    assert [p[2] for p in out2.posts] == [prep] * 3


def test_silent_node_sends_nothing():
    out = Recorder()
    b = behaviour("silent")
    b.transmit(out, (1, 2, 3), own_pre_prepare())
    assert out.posts == [] and not b.answers_sync


def test_bad_sig_node_corrupts_every_signature():
    out = Recorder()
    pp = own_pre_prepare()
    behaviour("bad_sig").transmit(out, (1, 2), pp)
    assert len(out.posts) == 2
    assert all(not valid(m) and m.proposal == pp.proposal for *_, m, _ in out.posts)


def test_delaying_node_adds_its_delay():
    out = Recorder()
    behaviour("delay", delay_ms=250).transmit(out, (1, 2), own_pre_prepare())
    assert [p[3] for p in out.posts] == [250, 250]


def test_vote_all_node_votes_for_any_pre_prepare():
    out = Recorder()
    pp = own_pre_prepare()
    behaviour("vote_all", node=2).observe(out, (0, 1, 3), pp)
    kinds = [type(m) for *_, m, _ in out.posts]
    assert kinds == [Prepare] * 3 + [Commit] * 3
    for *_, m, _ in out.posts:
        assert m.sender == 2 and m.digest == pp.proposal.digest() and valid(m)


def test_equivocation_reaches_honest_replicas_and_is_survived():
    scenario = load(SCENARIO_DIR / "equivocating-primary.toml")
    sim = Simulation(scenario, 4).run()
    # both proposals of some height were sent (the checker saw more than one per height)
    assert len(sim.checker.proposals) > len(sim.checker.committed)
    assert report.build(sim)["ok"]


# -- view change, checkpoints, sizes and memory --------------------------------

K = CONFIG.checkpoint_interval


def signed(m: Signed, by: int) -> Signed:
    return sign_message(m, SCHEME.signer(by).sign, "test")


def honest_view_change() -> ViewChange:
    """Node 3's VIEW-CHANGE(1): stable checkpoint K (proof by 0, 1, 2) and one
    prepared certificate at K + 1 (view-0 pre-prepare of 0, prepares of 2 and 3)."""
    root = b"r" * 32
    proof = tuple(signed(Checkpoint(K, root, s), s) for s in (0, 1, 2))
    payload = (b"tx:1:aaaa",)
    proposal = Proposal("test", K + 1, 5000, 0, RULES.payload_root(payload))
    pp = signed(PrePrepare(0, proposal, (), 0), 0)
    digest = proposal.digest()
    prepares = tuple(signed(Prepare(0, K + 1, digest, s), s) for s in (2, 3))
    return signed(ViewChange(1, K, root, proof, (PreparedCert(pp, prepares),), 3), 3)


def fresh_replica(me: int) -> Replica:
    return Replica(CONFIG, me, SCHEME.signer(me), VERIFY, RULES)


def rejections(replica: Replica, msg: Message) -> list[str]:
    return [a.reason for a in replica.on_message(msg, 10_000) if isinstance(a, Rejected)]


def test_honest_view_change_fixture_is_accepted():
    assert rejections(fresh_replica(1), honest_view_change()) == []


def test_forged_view_changes_are_self_signed_and_refused_except_the_legal_lie():
    b = behaviour("forge_view_change", node=3)
    assert isinstance(b, ForgeViewChange)
    vc = honest_view_change()
    for kind in FORGED_VIEW_CHANGES:
        forged = b.forge(vc, kind)
        assert forged != vc and valid(forged), kind
        reasons = rejections(fresh_replica(1), forged)
        if kind == "omit_certs":  # legal: quorum intersection covers the omission
            assert reasons == [] and forged.prepared == ()
        else:
            assert len(reasons) == 1 and reasons[0].startswith("bad-view-change"), (kind, reasons)


def test_forge_view_change_sends_a_different_forgery_to_each_peer():
    out = Recorder()
    b = behaviour("forge_view_change", node=3)
    b.transmit(out, (0, 1, 2), honest_view_change())
    sent = [m for *_, m, _ in out.posts]
    assert len(sent) == 3 and len({m.sig for m in sent}) == 3
    assert all(isinstance(m, ViewChange) and m.sender == 3 and valid(m) for m in sent)


def honest_new_view() -> NewView:
    """Node 1's NEW-VIEW(1) from the VIEW-CHANGEs of 1, 2 and 3: it re-proposes the
    value prepared at K + 1."""
    vc3 = honest_view_change()
    vcs = tuple(
        signed(ViewChange(1, K, vc3.stable_root, vc3.checkpoint_proof, (), s), s) for s in (1, 2)
    )
    cert = vc3.prepared[0]
    pp = signed(PrePrepare(1, cert.pre_prepare.proposal, (), 1), 1)
    return signed(NewView(1, (*vcs, vc3), (pp,), 1), 1)


def test_forged_new_views_depart_from_the_selection_and_are_refused():
    assert not any(
        r.startswith("bad-new-view") for r in rejections(fresh_replica(2), honest_new_view())
    )
    b = behaviour("forge_new_view", node=1)
    assert isinstance(b, ForgeNewView)
    nv = honest_new_view()
    for kind in FORGED_NEW_VIEWS:
        forged = b.forge(nv, kind)
        assert forged != nv and valid(forged) and forged.sender == 1, kind
        reasons = rejections(fresh_replica(2), forged)
        assert any(r.startswith("bad-new-view") for r in reasons), (kind, reasons)


def test_bad_checkpoints_cover_wrong_roots_odd_far_and_many_heights():
    b = behaviour("bad_checkpoint", node=3)
    assert isinstance(b, BadCheckpoint)
    cp = signed(Checkpoint(2 * K, b"r" * 32, 3), 3)
    out = Recorder()
    b.transmit(out, (0, 1, 2), cp)
    sent = [m for *_, m, _ in out.posts]
    assert cp not in sent  # the true checkpoint never leaves
    assert all(isinstance(m, Checkpoint) and valid(m) for m in sent)
    heights = {m.height for m in sent}
    assert 2 * K + 1 in heights  # not a checkpoint height
    assert max(heights) > 2 * K + 4 * CONFIG.watermark_window  # far beyond any window
    assert len(heights) > 4 * CONFIG.watermark_window // K  # many distinct heights
    wrong = [m for m in sent if m.height == 2 * K]
    assert wrong and all(m.state_root != cp.state_root for m in wrong)
    out2 = Recorder()
    b.transmit(out2, (0,), cp)  # a repeated checkpoint repeats the same lies (same objects)
    assert all(a is c for a, c in zip([p[2] for p in out2.posts], sent[::3], strict=True))


def test_oversized_pads_past_and_just_under_the_frame_limit():
    limit = 64 * 1024
    spec = ByzantineSpec(3, "oversized")
    b = make_behaviour(
        spec, CONFIG, SCHEME.signer(3), RULES, random.Random(1), max_frame_bytes=limit
    )
    assert isinstance(b, Oversized)
    frames = FrameLimit(limit)
    for kind in Oversized.KINDS:
        over = b.padded(kind, over=True)
        under = b.padded(kind, over=False)
        assert valid(over) and valid(under), kind
        assert frames.frame_size(over) > limit, kind
        assert limit - 1024 < frames.frame_size(under) <= limit, (kind, frames.frame_size(under))
        assert b.padded(kind, over=False) is under  # re-sent as the same object
    out = Recorder()
    b.transmit(out, (0, 1), signed(Checkpoint(K, b"r" * 32, 3), 3))
    sizes = sorted(frames.frame_size(m) for *_, m, _ in out.posts)
    assert len(sizes) == 6 and sizes[-1] > limit and sizes[2] > limit - 1024


def test_stale_view_change_replays_views_it_has_left():
    b = behaviour("stale_view_change", node=3)
    assert isinstance(b, StaleViewChange)
    out = Recorder()
    vcs = [signed(ViewChange(v, 0, b"", (), (), 3), 3) for v in (1, 2, 3)]
    for vc in vcs:
        b.transmit(out, (0,), vc)
        for h in range(1, 4):
            b.transmit(out, (0,), signed(Commit(vc.new_view, h, b"d" * 32, 3), 3))
    stale = [m for *_, m, _ in out.posts if isinstance(m, ViewChange)]
    # each VIEW-CHANGE went out once; older ones came back later, identical
    assert stale.count(vcs[0]) > 1 and stale.count(vcs[2]) == 1
    assert b.replayed > 0


def test_flood_views_sends_distinct_views_at_one_height():
    spec = ByzantineSpec(3, "flood_views", count=40)
    b = make_behaviour(spec, CONFIG, SCHEME.signer(3), RULES, random.Random(1))
    assert isinstance(b, FloodViews)
    out = Recorder()
    c = signed(Commit(0, 5, b"d" * 32, 3), 3)
    b.transmit(out, (0,), c)
    sent = [m for *_, m, _ in out.posts]
    commits = [m for m in sent if isinstance(m, Commit)]
    pps = [m for m in sent if isinstance(m, PrePrepare)]
    assert len({m.view for m in commits}) == 41 and {m.height for m in commits} == {5}
    assert len(pps) == 10 and all(CONFIG.primary(m.view) == 3 and m.view > 0 for m in pps)
    assert all(valid(m) for m in sent)


def test_status_lie_claims_a_huge_height_everywhere():
    b = behaviour("status_lie", node=3)
    assert b.status_height(12) == 12 + LIE_HEIGHT
    assert behaviour("silent").status_height(12) is None
    out = Recorder()
    b.transmit(out, (0,), signed(Status(0, 12, 0, 3), 3))
    (lie,) = [m for *_, m, _ in out.posts]
    assert isinstance(lie, Status) and lie.height == 12 + LIE_HEIGHT and valid(lie)


# -- the scenarios: the attacks reach the replicas and safety and liveness hold ---


def run_scenario(name: str, seed: int = 1) -> Simulation:
    return Simulation(load(SCENARIO_DIR / f"{name}.toml"), seed).run()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("byzantine-view-change-n4", "bad-view-change"),
        ("byzantine-new-view-n7", "bad-new-view"),
        ("byzantine-checkpoints-n4", "checkpoint-height-not-interval"),
        ("byzantine-oversized-n4", "bad-view-change"),
    ],
)
def test_attack_scenarios_are_refused_and_survived(name: str, reason: str):
    sim = run_scenario(name)
    rep = report.build(sim)
    assert rep["ok"], {k: v["first"] for k, v in rep["invariants"].items() if not v["ok"]}
    assert rep["view_changes"]["events"] > 0 or name == "byzantine-checkpoints-n4"
    assert rep["rejected"].get(reason, 0) > 0, rep["rejected"]


def test_oversized_scenario_drops_only_byzantine_frames():
    sim = run_scenario("byzantine-oversized-n4")
    assert set(sim.metrics.oversized) >= {"view_change", "new_view", "checkpoint"}
    assert sim.metrics.oversized_honest == {}
    assert sim.frame_verdict.ok


def test_stale_view_change_scenario_replays_old_views():
    sim = run_scenario("byzantine-stale-view-change-n4")
    b = sim.nodes[2].behaviour
    assert isinstance(b, StaleViewChange) and b.replayed > 0 and len(b.views) >= 2
    assert report.build(sim)["ok"]


def test_status_lie_does_not_stall_a_lagging_node():
    sim = run_scenario("byzantine-status-lie-n4")
    rep = report.build(sim)
    assert rep["ok"], {k: v["first"] for k, v in rep["invariants"].items() if not v["ok"]}
    assert sim.metrics.status_syncs > 0
    # the cut-off node 2 caught up with the honest majority after the heal
    assert sim.nodes[2].store.height >= sim.scenario.stop_at_height


# -- replica memory under the flood ------------------------------------------------


def sender_footprint(replica: Any, sender: int) -> tuple[int, int]:
    """(most entries one slot keeps for ``sender``'s votes, ``sender``'s buffered
    future messages): vote tallies, first-vote records, in every slot. Reads the
    replica's internals (``_slots``, ``_future``)."""
    per_slot = 0
    for slot in replica._slots.values():
        n = sum(1 for votes in slot.prepares.values() if sender in votes)
        n += sum(1 for votes in slot.commits.values() if sender in votes)
        n += sum(1 for key in slot.first_votes if key[2] == sender)
        per_slot = max(per_slot, n)
    return per_slot, len(replica._future_buffer.queues.get(sender, ()))


def flood_peak(count: int) -> tuple[int, int, int]:
    """Run byzantine-flood-n4 with ``count`` votes per flood; the peak footprint of
    the flooder in any honest replica, sampled every 20 virtual ms, and the number
    of flood messages it sent."""
    scenario = load(SCENARIO_DIR / "byzantine-flood-n4.toml")
    spec = scenario.byzantine[0]
    scenario = scenario.replace(byzantine=(dataclasses.replace(spec, count=count),))
    sim = Simulation(scenario, 1)
    peak = [0, 0]

    def sample() -> None:
        for node in sim.nodes:
            if node.honest and node.replica is not None:
                fp = sender_footprint(node.replica, spec.node)
                peak[0], peak[1] = max(peak[0], fp[0]), max(peak[1], fp[1])
        sim.call_at(sim.now + 20, sample)

    sim.call_at(0, sample)
    sim.run()
    assert report.build(sim)["ok"]
    b = sim.nodes[spec.node].behaviour
    assert isinstance(b, FloodViews)
    return peak[0], peak[1], b.sent


def test_flood_of_distinct_views_keeps_replica_memory_bounded():
    small = flood_peak(200)
    large = flood_peak(2_000)
    assert large[2] >= 10 * small[2] // 2  # the flood really grew
    # what a replica keeps for the flooder does not grow with the flood: per slot a
    # few views per vote kind, the future buffer capped by future_buffer_limit
    assert large[0] == small[0] <= 16, (small, large)
    assert large[1] <= CONFIG.future_buffer_limit, (small, large)
