"""The report of one simulation run: a JSON document that replays byte for byte.

Everything in it is an integer, a string, a boolean or null: rates are decimal
strings computed on integers, and no wall-clock time appears. ``dumps`` sorts
keys and fixes separators, so the same scenario and seed give identical bytes.
"""

from __future__ import annotations

import json
from typing import Any

from node.sim.engine import Simulation
from node.sim.metrics import decimal, percentile

REPORT_VERSION = 1


def build(sim: Simulation) -> dict[str, Any]:
    s = sim.scenario
    m = sim.metrics
    blocks = len(sim.checker.committed)
    elapsed = max(sim.now, 1)
    lat = sorted(m.latencies)
    nodes = []
    for node in sim.nodes:
        replica = node.replica
        nodes.append(
            {
                "id": node.id,
                "role": "honest" if node.behaviour is None else node.behaviour.name,
                "up": node.up,
                "height": node.store.height,
                "chain_hash": node.store.roots[-1].hex(),
                "view": None if replica is None else replica.view,
            }
        )
    honest_views = [
        n.replica.view for n in sim.nodes if n.behaviour is None and n.replica is not None
    ]
    return {
        "version": REPORT_VERSION,
        "scenario": s.name,
        "seed": sim.seed,
        "n": s.n,
        "f": sim.config.f,
        "virtual_time_ms": sim.now,
        "events": sim.events,
        "nodes": nodes,
        "blocks_committed": blocks,
        "txs_submitted": m.txs_submitted,
        "txs_committed": m.txs_committed,
        "throughput_tps": decimal(m.txs_committed * 1000, elapsed),
        "blocks_per_s": decimal(blocks * 1000, elapsed),
        "commit_latency_ms": {
            "count": len(lat),
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "max": lat[-1] if lat else None,
        },
        "view_changes": {"events": m.view_changes, "max_view": max(honest_views, default=0)},
        "messages": {
            "sent": dict(sorted(m.sent.items())),
            "total": sum(m.sent.values()),
            "per_block": {k: decimal(v, blocks) for k, v in sorted(m.sent.items())},
            "total_per_block": decimal(sum(m.sent.values()), blocks),
        },
        "evidence": m.evidence,
        "rejected": dict(sorted(m.rejected.items())),
        "invariants": {k: v.as_json() for k, v in sim.checker.verdicts.items()},
        "ok": sim.checker.all_ok(),
    }


def dumps(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def summary(report: dict[str, Any]) -> str:
    """A few readable lines for the terminal."""
    lat = report["commit_latency_ms"]
    msgs = report["messages"]
    heights = [n["height"] for n in report["nodes"]]
    lines = [
        f"scenario {report['scenario']}  seed {report['seed']}  n={report['n']} "
        f"f={report['f']}  virtual {report['virtual_time_ms']} ms  events {report['events']}",
        f"  blocks {report['blocks_committed']}  txs {report['txs_committed']}"
        f"/{report['txs_submitted']}  throughput {report['throughput_tps']} tx/s",
        f"  commit latency ms p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}",
        f"  view changes {report['view_changes']['events']} (max view "
        f"{report['view_changes']['max_view']})  evidence {report['evidence']}",
        f"  messages {msgs['total']} ({msgs['total_per_block']} per block)  heights {heights}",
    ]
    for name, verdict in report["invariants"].items():
        state = "ok" if verdict["ok"] else f"VIOLATED x{verdict['violations']}"
        note = f" ({verdict['note']})" if verdict.get("note") else ""
        lines.append(f"  {name:<10} {state}{note}")
        if not verdict["ok"]:
            lines.append(f"    first: {json.dumps(verdict['first'], sort_keys=True)}")
    return "\n".join(lines)
