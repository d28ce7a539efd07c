"""The invariant checker catches broken clusters, with the detail of the first violation."""

from __future__ import annotations

from typing import Any, cast

import msgspec

from consensus.actions import Action, Deliver
from consensus.config import ConsensusConfig
from consensus.messages import Commit, CommittedBlock, PrePrepare, Proposal
from node.sim import report
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from node.sim.engine import Simulation
from node.sim.invariants import InvariantChecker
from node.sim.replicas import ReplicaKit, SimReplica, real_kit
from node.sim.scenario import load
from tests.sim.helpers import SCENARIO_DIR

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


class _Forking:
    """A real replica whose deliveries are tampered with: a different block at each height."""

    def __init__(self, inner: SimReplica) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def wrapped(*args: Any) -> list[Action]:
            return [self._fork(a) for a in attr(*args)]

        return wrapped

    @staticmethod
    def _fork(action: Action) -> Action:
        if not isinstance(action, Deliver):
            return action
        p = action.block.proposal
        other = msgspec.structs.replace(p, timestamp=p.timestamp + 1)
        return Deliver(msgspec.structs.replace(action.block, proposal=other))


def forking_kit(bad_node: int) -> ReplicaKit:
    kit = real_kit()

    def make(*args: Any) -> SimReplica:
        r = kit.factory(*args)
        return cast(SimReplica, _Forking(r)) if args[1] == bad_node else r

    return ReplicaKit(make, kit.genesis_root)


def test_broken_cluster_is_caught_in_the_report():
    scenario = load(SCENARIO_DIR / "happy-n4.toml")
    rep = report.build(Simulation(scenario, 0, forking_kit(3)).run())
    assert not rep["ok"]
    agreement = rep["invariants"]["agreement"]
    assert not agreement["ok"]
    first = agreement["first"]
    assert 3 in (first["node_a"], first["node_b"]) and first["digest_a"] != first["digest_b"]
    assert not rep["invariants"]["validity"]["ok"]
