"""The simulator runs the daemon's driver core (node/engine/core.py): inputs that
arrive while a round's write is in flight wait and share the next write (group
commit), the messages that follow a Persist leave only once the write landed,
and a crash during a write loses those messages whether or not the write
reached the disk. On real replicas: no honest vote leaves before its slot
record is durable, even with slow writes and crashes."""

from __future__ import annotations

from functools import partial

from consensus.actions import Action, Broadcast, Persist
from consensus.messages import Commit, CommittedBlock, Message, NewView, Prepare, PrePrepare
from consensus.records import slot_key
from node.engine.core import OnRequest
from node.sim import report
from node.sim.engine import Simulation
from node.sim.node import SimNode
from node.sim.replicas import ReplicaKit, SimReplica
from node.sim.scenario import Fault, Latency, NetworkSpec, Scenario, WorkloadSpec, load
from tests.sim.helpers import SCENARIO_DIR

LATENCY = 10


class Stub:
    """Node 0 persists a record for each request and broadcasts a PREPARE for it;
    node 1 notes when each PREPARE arrives and whether node 0 had made it durable."""

    view = 0
    height = 0

    def __init__(self, me: int, records: dict[bytes, bytes] | None, sim: list[Simulation]):
        self.me = me
        self.records = records
        self.sim = sim
        self.requests: list[tuple[bytes, int]] = []
        self.arrivals: list[tuple[int, int, bool]] = []

    def start(self, now: int) -> list[Action]:
        return []

    def on_request(self, request: bytes, now: int) -> list[Action]:
        self.requests.append((request, now))
        k = int(request)
        vote = Prepare(0, k, bytes(32), self.me, bytes(64))
        return [Persist(((slot_key(k), request),)), Broadcast(vote)]

    def on_message(self, msg: Message, now: int, epoch: int = 0) -> list[Action]:
        assert isinstance(msg, Prepare)
        sim = self.sim[0]
        durable = slot_key(msg.height) in sim.nodes[msg.sender].store.records
        self.arrivals.append((sim.now, msg.height, durable))
        return []

    def on_timer(self, now: int) -> list[Action]:
        return []

    def on_executed(self, height: int, state_root: bytes, now: int) -> list[Action]:
        return []

    def on_committed_block(self, block: CommittedBlock, now: int) -> list[Action]:
        return []


def stub_run(
    requests: dict[int, list[int]], *, write_ms: int, seed: int = 0, crash: Fault | None = None
) -> tuple[Simulation, list[Stub]]:
    """Two stub nodes; ``requests`` maps a virtual time to the requests node 0 gets then."""
    stubs: list[Stub] = []
    holder: list[Simulation] = []

    def make(*args: object) -> SimReplica:
        me, records = args[1], args[5]
        assert isinstance(me, int) and (records is None or isinstance(records, dict))
        stubs.append(Stub(me, records, holder))
        return stubs[-1]

    scenario = Scenario(
        name="rounds",
        n=2,
        duration_ms=1_000,
        network=NetworkSpec(latency=Latency("constant", LATENCY, 0)),
        workload=WorkloadSpec(start_ms=10_000),  # no client traffic: the test feeds node 0
        faults=() if crash is None else (crash,),
    )
    sim = Simulation(scenario, seed, ReplicaKit(make, b"g" * 32), write_ms=write_ms)
    holder.append(sim)

    def feed(at: int, ks: list[int]) -> None:
        for k in ks:
            sim._input(sim.nodes[0], OnRequest(b"%d" % k), at)

    for at, ks in requests.items():
        sim.call_at(at, partial(feed, at, ks))
    sim.run()
    return sim, stubs


def test_inputs_arriving_during_a_write_share_the_next_one_and_messages_wait_for_it():
    """Request 1 is a round of its own; 2 and 3, arriving while its write is in
    flight, wait and form the next round, with one write; each PREPARE leaves
    when its round's write has landed, never before."""
    w = 5
    sim, stubs = stub_run({100: [1, 2, 3]}, write_ms=w)
    epoch = sim.scenario.clock_epoch_ms
    assert stubs[0].requests == [
        (b"1", epoch + 100),
        (b"2", epoch + 100 + w),
        (b"3", epoch + 100 + w),
    ]
    assert stubs[1].arrivals == [
        (100 + w + LATENCY, 1, True),
        (100 + 2 * w + LATENCY, 2, True),
        (100 + 2 * w + LATENCY, 3, True),
    ]
    assert sim.metrics.sent == {"prepare": 3}


def test_without_a_write_in_flight_each_input_is_a_round_at_once():
    sim, stubs = stub_run({100: [1], 200: [2]}, write_ms=5)
    epoch = sim.scenario.clock_epoch_ms
    assert stubs[0].requests == [(b"1", epoch + 100), (b"2", epoch + 200)]
    assert [t for t, _, _ in stubs[1].arrivals] == [115, 215]


def test_a_crash_during_a_write_loses_its_messages_and_maybe_its_records():
    """Node 0 crashes 3 ms into a 5 ms write: the PREPARE waiting for it never
    leaves; a seeded coin says whether the batch reached the disk, and the
    restarted replica gets the records accordingly. Over a few seeds both happen."""
    outcomes = set()
    for seed in range(16):
        crash = Fault("crash", 103, 500, node=0)
        sim, stubs = stub_run({100: [1]}, write_ms=5, seed=seed, crash=crash)
        receiver = next(s for s in stubs if s.me == 1)
        assert receiver.arrivals == []
        assert sim.metrics.crashes_in_write == 1 and sim.metrics.unsent_on_crash == 1
        assert "prepare" not in sim.metrics.sent
        restarted = [s for s in stubs if s.me == 0 and s.records is not None]
        assert len(restarted) == 1
        kept = slot_key(1) in sim.nodes[0].store.records
        assert (slot_key(1) in (restarted[0].records or {})) == kept
        outcomes.add(kept)
    assert outcomes == {True, False}


class _DurableBeforeSent(Simulation):
    """Checks, whenever an honest node sends one of its own votes for the first
    time, that the vote's slot record is already in its durable store."""

    seen: set[tuple[int, str, int, int]]
    unpersisted: list[tuple[int, str, int, int]]

    def _check(self, node: SimNode, msg: Message) -> None:
        if not node.honest:
            return
        votes = list(msg.pre_prepares) if isinstance(msg, NewView) else [msg]
        for v in votes:
            if not isinstance(v, PrePrepare | Prepare | Commit) or v.sender != node.id:
                continue
            key = (node.id, type(v).__name__, v.view, v.height)
            if key in self.seen:
                continue
            self.seen.add(key)
            if slot_key(v.height) not in node.store.records:
                self.unpersisted.append(key)

    def _broadcast(self, node: SimNode, msg: Message, vt: int, epoch: int = 0) -> None:
        self._check(node, msg)
        super()._broadcast(node, msg, vt, epoch)

    def _send(self, node: SimNode, to: int, msg: Message, vt: int, epoch: int = 0) -> None:
        self._check(node, msg)
        super()._send(node, to, msg, vt, epoch)


def test_no_honest_vote_leaves_before_its_record_is_durable_even_with_slow_writes():
    """Real replicas, a primary crash and a full restart, writes of 1 ms (the
    default) and 20 ms: every first vote of an honest node finds its slot record
    durable, crashes do catch writes in flight, and every verdict holds."""
    caught = 0
    for name in ("primary-crash", "full-restart-n4"):
        scenario = load(SCENARIO_DIR / f"{name}.toml")
        for write_ms, seed in ((1, 0), (20, 1), (20, 2)):
            sim = _DurableBeforeSent(scenario, seed, write_ms=write_ms)
            sim.seen, sim.unpersisted = set(), []
            sim.run()
            rep = report.build(sim)
            bad = {k: v["first"] for k, v in rep["invariants"].items() if not v["ok"]}
            assert not bad, (name, write_ms, seed, bad)
            assert sim.seen and not sim.unpersisted, (name, write_ms, seed, sim.unpersisted[:3])
            caught += sim.metrics.crashes_in_write
    assert caught > 0
