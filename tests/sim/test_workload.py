"""Client workloads: open-loop arrival counts, closed-loop in-flight bound, tx bytes."""

from __future__ import annotations

import random

from node.sim import report
from node.sim.crypto import SimPayloadRules
from node.sim.engine import Simulation
from node.sim.scenario import Scenario, WorkloadSpec
from node.sim.workload import Workload


def run(workload: WorkloadSpec, duration_ms: int = 3_000) -> Simulation:
    scenario = Scenario(name="wl", n=4, duration_ms=duration_ms, workload=workload)
    return Simulation(scenario, 3).run()


def test_open_loop_fixed_rate_submits_exactly_rate_times_duration():
    sim = run(WorkloadSpec(rate_tps=150, stop_ms=2_000))
    assert sim.metrics.txs_submitted == 300
    assert sim.metrics.txs_committed == 300
    assert report.build(sim)["ok"]


def test_open_loop_uniform_arrivals_average_the_rate():
    sim = run(WorkloadSpec(rate_tps=100, arrival="uniform", stop_ms=2_000))
    assert 170 <= sim.metrics.txs_submitted <= 230


def test_closed_loop_keeps_one_tx_per_client_in_flight():
    sim = run(WorkloadSpec(mode="closed", clients=3, think_ms=5, max_txs=60))
    m = sim.metrics
    assert m.txs_submitted == 60 and m.txs_committed == 60
    assert len(m.latencies) == 60
    # with three clients at most three transactions share a block
    assert all(len(n_block.payload) <= 3 for n_block in sim.nodes[0].store.chain)


def test_tx_bytes_are_unique_valid_and_sized():
    wl = Workload(WorkloadSpec(tx_size=40), random.Random(0))
    txs = [wl.new_tx(i) for i in range(1000)]
    assert len(set(txs)) == 1000
    assert all(len(t) == 40 for t in txs)
    assert SimPayloadRules().payload_valid(tuple(txs))
