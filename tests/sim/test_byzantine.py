"""Byzantine behaviours twist outbound traffic but only ever sign with their own key."""

from __future__ import annotations

import random
from typing import Any

from consensus.config import ConsensusConfig
from consensus.messages import Commit, Message, Prepare, PrePrepare, Proposal
from node.sim import report
from node.sim.byzantine import Behaviour, make_behaviour
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from node.sim.engine import Simulation
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
