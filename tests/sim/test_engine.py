"""The engine's driver duties: timers, drifting clocks, crash and restart from the store."""

from __future__ import annotations

from typing import Any

from consensus.actions import Action, Persist, SetTimer
from node.sim import report
from node.sim.engine import Simulation
from node.sim.replicas import ReplicaKit, SimReplica, real_kit
from node.sim.scenario import DriftSpec, Fault, Scenario, WorkloadSpec, load
from node.sim.store import DurableStore
from tests.sim.helpers import SCENARIO_DIR

EPOCH = 1_000_000


class Probe:
    """A stand-in replica that only plays with its timer."""

    view = 0
    height = 0

    def __init__(self, plan: list[list[int]]) -> None:
        self.plan = plan  # list of lists of SetTimer offsets, one per call
        self.fired: list[int] = []

    def _next(self, now: int) -> list[Action]:
        offsets = self.plan.pop(0) if self.plan else []
        return [SetTimer(now + d) for d in offsets]

    def start(self, now):
        return self._next(now)

    def on_timer(self, now):
        self.fired.append(now)
        return self._next(now)

    def on_message(self, msg, now, epoch=0):
        return []

    def on_request(self, request, now):
        return []

    def on_executed(self, height, root, now):
        return []

    def on_committed_block(self, block, now):
        return []


def probe_sim(plan: list[list[int]], drift: tuple[DriftSpec, ...] = ()) -> Probe:
    probes: list[Probe] = []

    def make(*args: Any) -> SimReplica:
        probes.append(Probe([list(p) for p in plan]))
        return probes[-1]

    scenario = Scenario(
        name="timers",
        n=1,
        duration_ms=10_000,
        clock_epoch_ms=EPOCH,
        drift=drift,
        workload=WorkloadSpec(max_txs=1),
    )
    Simulation(scenario, 0, ReplicaKit(make, b"g" * 32)).run()
    return probes[0]


def test_only_the_latest_set_timer_counts():
    # start asks for +100 then +50: only +50 fires; then +30; then nothing
    p = probe_sim([[100, 50], [30], []])
    assert p.fired == [EPOCH + 50, EPOCH + 80]


def test_a_pushed_back_timer_fires_late_once():
    p = probe_sim([[50, 200], []])
    assert p.fired == [EPOCH + 200]


def test_timers_follow_the_drifting_local_clock():
    drift = (DriftSpec(node=0, offset_ms=500, rate_ppm=100_000),)
    p = probe_sim([[1_000], [1_000], []], drift)
    start = EPOCH + 500
    assert p.fired[0] >= start + 1_000 and p.fired[0] - (start + 1_000) <= 1
    assert p.fired[1] >= p.fired[0] + 1_000


def test_store_persist_upserts_and_deletes():
    s = DurableStore(b"g" * 32)
    s.persist(Persist(((b"a", b"1"), (b"b", b"2"))).records)
    s.persist(((b"a", None), (b"b", b"3")))
    assert s.records == {b"b": b"3"}
    assert s.tip() == (0, 0, b"g" * 32)


def test_crash_restart_rebuilds_the_replica_from_a_copy_of_its_records():
    scenario = load(SCENARIO_DIR / "primary-crash.toml")
    kit = real_kit()
    built: list[tuple[int, object, object, object]] = []

    def make(config, me, signer, verifier, rules, records, tip):
        r = kit.factory(config, me, signer, verifier, rules, records, tip)
        built.append((me, records, tip, r))
        return r

    sim = Simulation(scenario, 2, ReplicaKit(make, kit.genesis_root))
    first = None
    crash_at = scenario.faults[0].at_ms

    def snapshot():
        nonlocal first
        first = (dict(sim.nodes[0].store.records), sim.nodes[0].store.tip())

    sim.call_at(crash_at, snapshot)  # queued after the crash event of the same instant
    sim.run()
    restarts = [b for b in built if b[0] == 0 and b[1] is not None]
    assert len(restarts) == 1
    _, records, tip, replica = restarts[0]
    assert first is not None
    assert records == first[0] and records is not sim.nodes[0].store.records
    assert tip == first[1] and tip[0] > 0
    assert sim.nodes[0].replica is replica
    rep = report.build(sim)
    assert rep["ok"]
    heights = [n["height"] for n in rep["nodes"]]
    assert heights[0] > tip[0]


def test_messages_to_a_crashed_node_are_dropped():
    scenario = Scenario(
        name="down",
        n=4,
        duration_ms=3_000,
        stop_at_height=0,
        faults=(Fault("crash", 0, None, node=3),),
        liveness_bound_ms=2_000,
    )
    sim = Simulation(scenario, 1).run()
    assert sim.nodes[3].store.height == 0 and not sim.nodes[3].up
    assert min(n.store.height for n in sim.nodes[:3]) > 0
    assert report.build(sim)["ok"]


def test_real_ed25519_signatures_and_per_link_rules():
    from node.sim.scenario import Latency, LinkRule, NetworkSpec

    scenario = Scenario(
        name="ed",
        n=4,
        duration_ms=5_000,
        stop_at_height=5,
        crypto="ed25519",
        wire=True,
        network=NetworkSpec(
            reorder_ppm=200_000,
            links=(LinkRule(src=(0,), dst=(1, 2, 3), latency=Latency("constant", 40, 0)),),
        ),
    )
    rep = report.build(Simulation(scenario, 0).run())
    assert rep["ok"] and rep["blocks_committed"] >= 5
    assert rep["rejected"] == {}
