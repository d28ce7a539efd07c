"""The invariant checker catches broken clusters, with the detail of the first violation."""

from __future__ import annotations

from typing import Any, cast

import msgspec

from consensus.actions import Action, Broadcast
from consensus.config import ConsensusConfig
from consensus.messages import Commit, CommittedBlock, NewView, Prepare, PrePrepare, Proposal
from node.sim import report
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from node.sim.engine import Simulation
from node.sim.invariants import InvariantChecker
from node.sim.replicas import ReplicaKit, SimReplica, real_kit
from node.sim.scenario import Fault, Scenario, load
from tests.sim.helpers import SCENARIO_DIR, ForkingReplica, forking_kit

CONFIG = ConsensusConfig(chain_id="test", n=4)
SCHEME = KeyedHashScheme(4, 0)
RULES = SimPayloadRules()


def block(
    height: int, payload: tuple[bytes, ...], signers: tuple[int, ...] = (0, 1, 2), view: int = 0
) -> tuple[CommittedBlock, PrePrepare]:
    proposal = Proposal("test", height, 1000 + height, 0, RULES.payload_root(payload))
    digest = proposal.digest()
    cert = []
    for s in signers:
        c = Commit(view, height, digest, s)
        cert.append(msgspec.structs.replace(c, sig=SCHEME.signer(s).sign(c.signing_bytes("test"))))
    pp = PrePrepare(view, proposal, payload, 0)
    return CommittedBlock(proposal, payload, tuple(cert)), pp


def checker(**kw: Any) -> InvariantChecker:
    return InvariantChecker(CONFIG, SCHEME.verifier(), RULES, **kw)


def test_honest_commits_pass():
    c = checker()
    b, pp = block(1, (b"tx:1:aa",))
    c.record_pre_prepare(pp)
    for node in range(4):
        c.on_commit(node, b, b.proposal.digest(), 10)
    assert c.all_ok()


def test_conflicting_commit_breaks_agreement_with_detail():
    c = checker()
    a, pp_a = block(1, (b"tx:1:aa",))
    b, pp_b = block(1, (b"tx:2:bb",))
    c.record_pre_prepare(pp_a)
    c.record_pre_prepare(pp_b)
    assert c.on_commit(0, a, a.proposal.digest(), 10) is True
    assert c.on_commit(2, b, b.proposal.digest(), 12) is False
    v = c.verdicts["agreement"]
    assert not v.ok and v.violations == 1
    assert v.first == {
        "height": 1,
        "time_ms": 12,
        "node_a": 0,
        "digest_a": a.proposal.digest().hex(),
        "node_b": 2,
        "digest_b": b.proposal.digest().hex(),
    }
    assert c.verdicts["validity"].ok


def test_block_never_pre_prepared_breaks_validity():
    c = checker()
    b, _ = block(1, (b"tx:1:aa",))
    c.on_commit(0, b, b.proposal.digest(), 5)
    v = c.verdicts["validity"]
    assert not v.ok and v.first is not None and v.first["reason"] == "never pre-prepared"


def test_short_or_forged_certificate_breaks_validity():
    c = checker()
    short, pp = block(1, (b"tx:1:aa",), signers=(0, 1))
    c.record_pre_prepare(pp)
    c.on_commit(0, short, short.proposal.digest(), 5)
    first = c.verdicts["validity"].first
    assert first is not None and "2 valid matching votes" in first["reason"]

    c = checker()
    good, pp = block(1, (b"tx:1:aa",))
    forged = msgspec.structs.replace(good.certificate[2], sig=b"\x00" * 16)
    bad = msgspec.structs.replace(good, certificate=(*good.certificate[:2], forged))
    c.record_pre_prepare(pp)
    c.on_commit(0, bad, bad.proposal.digest(), 5)
    assert not c.verdicts["validity"].ok

    # a quorum split over two views is no certificate either
    c = checker()
    b0, pp = block(1, (b"tx:1:aa",), signers=(0, 1))
    b1, _ = block(1, (b"tx:1:aa",), signers=(2,), view=1)
    mixed = msgspec.structs.replace(b0, certificate=b0.certificate + b1.certificate)
    c.record_pre_prepare(pp)
    c.on_commit(0, mixed, mixed.proposal.digest(), 5)
    assert not c.verdicts["validity"].ok


def test_payload_not_matching_root_breaks_validity():
    c = checker()
    b, pp = block(1, (b"tx:1:aa",))
    c.record_pre_prepare(pp)
    swapped = msgspec.structs.replace(b, payload=(b"tx:9:zz",))
    c.on_commit(0, swapped, swapped.proposal.digest(), 5)
    first = c.verdicts["validity"].first
    assert first is not None and first["reason"] == "payload does not match payload_root"


def test_liveness_needs_every_node_to_commit_after_the_heal():
    c = checker(liveness_after=100, liveness_bound=50, liveness_nodes=[0, 1, 2])
    b, pp = block(1, (b"tx:1:aa",))
    c.record_pre_prepare(pp)
    c.on_commit(0, b, b.proposal.digest(), 90)  # before the heal: does not count
    c.on_commit(1, b, b.proposal.digest(), 120)
    c.on_commit(2, b, b.proposal.digest(), 200)  # after the deadline
    assert not c.liveness_satisfied()
    c.finish()
    v = c.verdicts["liveness"]
    assert v.violations == 2
    assert v.first == {"node": 0, "after_ms": 100, "deadline_ms": 150, "first_commit_ms": None}


def test_liveness_not_applicable_with_more_than_f_faulty():
    c = checker(liveness_nodes=[0], liveness_applicable=False)
    c.finish()
    assert c.verdicts["liveness"].ok and "not applicable" in c.verdicts["liveness"].note


def test_broken_cluster_is_caught_in_the_report():
    scenario = load(SCENARIO_DIR / "happy-n4.toml")
    rep = report.build(Simulation(scenario, 0, forking_kit(3)).run())
    assert not rep["ok"]
    agreement = rep["invariants"]["agreement"]
    assert not agreement["ok"]
    first = agreement["first"]
    assert 3 in (first["node_a"], first["node_b"]) and first["digest_a"] != first["digest_b"]
    assert not rep["invariants"]["validity"]["ok"]


# -- the strict verdicts -------------------------------------------------------


def test_vote_uniqueness_catches_two_votes_for_one_slot_and_ignores_relays():
    c = checker()
    d1, d2 = b"\x01" * 32, b"\x02" * 32
    c.on_honest_send(1, Prepare(0, 5, d1, 1), 10)
    c.on_honest_send(1, Prepare(0, 5, d1, 1), 11)  # the same vote again: fine
    c.on_honest_send(1, Commit(0, 5, d2, 1), 12)  # another kind: its own slot
    c.on_honest_send(1, Prepare(1, 5, d2, 1), 13)  # another view: fine
    c.on_honest_send(2, Prepare(0, 5, d2, 1), 14)  # node 2 passing on node 1's vote
    assert c.verdicts["vote_uniqueness"].ok
    c.on_honest_send(1, Prepare(0, 5, d2, 1), 20)
    v = c.verdicts["vote_uniqueness"]
    assert v.violations == 1
    assert v.first == {
        "node": 1,
        "kind": "prepare",
        "view": 0,
        "height": 5,
        "digest_a": d1.hex(),
        "digest_b": d2.hex(),
        "time_ms": 20,
    }


def test_vote_uniqueness_sees_pre_prepares_inside_new_view():
    c = checker()
    _, pp_a = block(1, (b"tx:1:aa",), view=1)
    _, pp_b = block(1, (b"tx:2:bb",), view=1)
    pp_a = msgspec.structs.replace(pp_a, sender=1)
    pp_b = msgspec.structs.replace(pp_b, sender=1)
    c.on_honest_send(1, NewView(1, (), (pp_a,), 1), 10)
    assert c.verdicts["vote_uniqueness"].ok and pp_a.proposal.digest() in c.proposals
    c.on_honest_send(1, pp_b, 11)
    first = c.verdicts["vote_uniqueness"].first
    assert first is not None and first["kind"] == "pre_prepare" and first["view"] == 1


def test_evidence_against_an_honest_validator_is_a_violation():
    c = checker(honest=[0, 1, 2])
    c.on_evidence(0, 3, 10)  # 3 is Byzantine: fair
    assert c.verdicts["evidence_honest"].ok
    c.on_evidence(2, 1, 11)
    assert c.verdicts["evidence_honest"].first == {"reporter": 2, "validator": 1, "time_ms": 11}


def test_requests_must_commit_within_the_bound_after_arrival_or_the_last_fault():
    c = checker(liveness_after=1_000, liveness_bound=500)
    b, pp = block(1, (b"tx:1:aa", b"tx:2:bb"))
    c.record_pre_prepare(pp)
    c.on_request(b"tx:1:aa", 100)  # during the fault: judged from 1000, deadline 1500
    c.on_request(b"tx:1:aa", 900)  # a later arrival elsewhere does not move it
    c.on_request(b"tx:2:bb", 1_200)  # deadline 1700
    c.on_request(b"tx:3:cc", 1_300)  # never committed, deadline 1800
    c.on_request(b"tx:4:dd", 2_000)  # deadline 2500: after the end, not judged
    c.on_commit(0, b, b.proposal.digest(), 1_600)
    c.on_commit(1, b, b.proposal.digest(), 9_999)  # a later commit of the same block
    c.on_request(b"tx:2:bb", 1_700)  # arrives after its commit: nothing pending
    v = c.verdicts["requests"]
    assert v.violations == 1
    first = {"tx": "tx:1:aa", "arrived_ms": 100, "deadline_ms": 1500, "committed_ms": 1600}
    assert v.first == first
    c.finish(2_000, {0: 1, 1: 1})
    assert v.violations == 2
    assert c.requests[b"tx:3:cc"] == 1_300


def test_termination_needs_every_honest_node_that_is_up_at_stop_at_height():
    c = checker(stop_at_height=3, liveness_nodes=[0, 1])
    c.finish(5_000, {0: 3, 1: 2})
    v = c.verdicts["termination"]
    assert v.first == {"node": 1, "height": 2, "stop_at_height": 3, "end_ms": 5_000}
    c = checker(stop_at_height=0)
    c.finish(5_000, {0: 3})
    assert c.verdicts["termination"].ok and "stop_at_height is 0" in c.verdicts["termination"].note
    c = checker(stop_at_height=3, liveness_applicable=False)
    c.finish(5_000, {0: 0})
    assert c.verdicts["termination"].ok and "not applicable" in c.verdicts["termination"].note


def commit_chain(c: InvariantChecker, node: int, heights: int, at: int) -> None:
    for h in range(1, heights + 1):
        b, pp = block(h, (b"tx:%d:" % h,))
        c.record_pre_prepare(pp)
        c.on_commit(node, b, b.proposal.digest(), at)


def test_convergence_in_a_quiescent_run():
    def run(heights: dict[int, tuple[int, int]], end: int = 10_000) -> InvariantChecker:
        c = checker(liveness_after=1_000, liveness_bound=2_000, quiescent=True)
        c.last_submit = 1_500  # deadline 3500
        for node, (h, at) in heights.items():
            commit_chain(c, node, h, at)
        c.finish(end, {node: h for node, (h, _) in heights.items()}, True)
        return c

    assert run({0: (4, 1_600), 1: (4, 3_000)}).verdicts["convergence"].ok
    behind = run({0: (4, 1_600), 1: (2, 1_600)}).verdicts["convergence"]
    assert behind.first == {
        "node": 1,
        "height": 2,
        "target_height": 4,
        "reached_ms": 1_600,
        "deadline_ms": 3_500,
    }
    late = run({0: (4, 1_600), 1: (4, 3_600)}).verdicts["convergence"]
    assert late.violations == 1 and late.first is not None and late.first["reached_ms"] == 3_600
    early = run({0: (4, 1_600), 1: (2, 1_600)}, end=3_000).verdicts["convergence"]
    assert early.ok and "before the deadline" in early.note
    c = checker(quiescent=False)
    c.finish(10_000, {0: 1, 1: 0})
    assert c.verdicts["convergence"].ok and "runs to the end" in c.verdicts["convergence"].note


def test_liveness_gives_way_to_convergence_when_the_load_stopped_before_the_heal():
    c = checker(liveness_after=3_000, liveness_bound=500, liveness_nodes=[0, 1], quiescent=True)
    c.last_submit = 2_000
    assert not c.liveness_satisfied()  # the workload might still send more
    c.workload_done = True
    assert c.liveness_satisfied()
    c.finish(4_000, {0: 0, 1: 0}, True)
    assert c.verdicts["liveness"].ok and "see convergence" in c.verdicts["liveness"].note


class _DoubleVoter(ForkingReplica):
    """A replica that, besides each Prepare it broadcasts, sends one for another digest."""

    @staticmethod
    def _fork(action: Action) -> Action:
        return action

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def wrapped(*args: Any) -> list[Action]:
            out: list[Action] = []
            for a in attr(*args):
                out.append(a)
                if isinstance(a, Broadcast) and isinstance(a.message, Prepare):
                    other = msgspec.structs.replace(a.message, digest=b"\xee" * 32)
                    out.append(Broadcast(other))
            return out

        return wrapped


def test_an_honest_node_that_votes_twice_breaks_vote_uniqueness_in_the_engine():
    kit = real_kit()

    def make(*args: Any) -> SimReplica:
        r = kit.factory(*args)
        return cast(SimReplica, _DoubleVoter(r)) if args[1] == 2 else r

    scenario = load(SCENARIO_DIR / "happy-n4.toml")
    rep = report.build(Simulation(scenario, 0, ReplicaKit(make, kit.genesis_root)).run())
    v = rep["invariants"]["vote_uniqueness"]
    assert not v["ok"] and v["first"]["node"] == 2 and v["first"]["kind"] == "prepare"
    assert v["first"]["digest_b"] == "ee" * 32
    assert rep["invariants"]["agreement"]["ok"]


def test_a_byzantine_double_voter_is_not_an_honest_one():
    scenario = load(SCENARIO_DIR / "equivocating-primary.toml")
    rep = report.build(Simulation(scenario, 1).run())
    assert rep["invariants"]["vote_uniqueness"]["ok"] and rep["ok"]


def test_drop_faults_cut_only_the_named_messages_on_the_named_links():
    scenario = Scenario(
        name="drops",
        n=4,
        duration_ms=3_000,
        faults=(
            Fault("drop", 100, 200, src=(0,), dst=(3,), messages=("commit",)),
            Fault("drop", 150, 250, dst=(1,)),
        ),
    )
    sim = Simulation(scenario, 0)
    assert sim._link("commit") == sim.network.delays
    sim._set_drop(scenario.faults[0], True)
    assert sim._link("commit")(0, 3) == () and sim._link("commit")(1, 3) != ()
    assert sim._link("commit")(3, 0) != () and sim._link("prepare")(0, 3) != ()
    sim._set_drop(scenario.faults[1], True)
    assert sim._link("prepare")(2, 1) == () and sim._link("sync_response")(0, 1) == ()
    sim._set_drop(scenario.faults[0], False)
    assert sim._link("commit")(0, 3) != () and sim._link("checkpoint")(3, 1) == ()
    sim._set_drop(scenario.faults[1], False)
    assert sim._link("commit") == sim.network.delays
