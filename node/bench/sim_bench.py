"""Wall time of simulated runs: ``python -m node.bench.sim_bench`` prints JSON.

Two fixed workloads of the deterministic simulator with the cheap keyed-hash
signatures: n=4 to 10,000 committed blocks and n=31 to 500 blocks. Each is
run three times with the same seed (identical virtual work); the median wall
time is reported. Nothing is written to disk.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from typing import Any

from node.sim.engine import Simulation
from node.sim.scenario import Latency, NetworkSpec, Scenario, WorkloadSpec

RUNS = 3
SEED = 1


def bench_scenario(n: int, blocks: int) -> Scenario:
    return Scenario(
        name=f"bench-n{n}-{blocks}",
        n=n,
        duration_ms=10**9,
        stop_at_height=blocks,
        crypto="keyed-hash",
        consensus=(("batch_max_count", 10),),
        network=NetworkSpec(latency=Latency("uniform", 2, 10)),
        workload=WorkloadSpec(rate_tps=200, tx_size=64),
    )


def measure(n: int, blocks: int) -> dict[str, Any]:
    scenario = bench_scenario(n, blocks)
    walls: list[float] = []
    sim = None
    for _ in range(RUNS):
        started = time.perf_counter()
        sim = Simulation(scenario, SEED).run()
        walls.append(time.perf_counter() - started)
    assert sim is not None
    median = statistics.median(walls)
    committed = min(node.store.height for node in sim.nodes)
    return {
        "name": scenario.name,
        "n": n,
        "target_blocks": blocks,
        "committed_blocks": committed,
        "txs_committed": sim.metrics.txs_committed,
        "events": sim.events,
        "messages": sum(sim.metrics.sent.values()),
        "virtual_ms": sim.now,
        "invariants_ok": sim.checker.all_ok(),
        "wall_s_runs": [round(w, 3) for w in walls],
        "wall_s_median": round(median, 3),
        "blocks_per_wall_s": round(committed / median, 1),
        "events_per_wall_s": round(sim.events / median),
    }


def main() -> None:
    results = {
        "benchmark": "sim",
        "crypto": "keyed-hash",
        "runs": RUNS,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": [measure(4, 10_000), measure(31, 500)],
    }
    json.dump(results, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
