"""Parameter sweeps: one scenario over many seeds and parameter values, as one CSV.

``--param name=v1,v2,...`` varies one knob; several ``--param`` options form
their cartesian product, and every combination runs with seeds
``first_seed .. first_seed + seeds - 1``. Knobs: ``n`` (cluster size),
``loss`` (probability), ``latency`` (``20``, ``50-300`` or ``100~20``) and
``batch`` (``batch_max_count``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.sim import report
from node.sim.engine import Simulation
from node.sim.replicas import ReplicaKit
from node.sim.scenario import Scenario, ScenarioError, parse_latency, probability_ppm

KNOBS = ("n", "loss", "latency", "batch")
CSV_FIELDS = (
    "scenario",
    "n",
    "loss",
    "latency",
    "batch",
    "seed",
    "ok",
    "blocks",
    "txs",
    "throughput_tps",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "view_changes",
    "messages",
    "messages_per_block",
    "virtual_time_ms",
    "violations",
)


def parse_params(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or name not in KNOBS:
            raise ScenarioError(f"--param {spec!r}: use NAME=v1,v2 with NAME one of {KNOBS}")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals:
            raise ScenarioError(f"--param {spec!r} lists no values")
        if any(name == seen for seen, _ in out):
            raise ScenarioError(f"--param {name} given twice")
        out.append((name, vals))
    return out


def apply(scenario: Scenario, name: str, value: str) -> Scenario:
    """``scenario`` with one knob set from its command-line text."""
    try:
        if name == "n":
            return scenario.replace(n=int(value))
        if name == "loss":
            net = dataclasses.replace(scenario.network, loss_ppm=probability_ppm(float(value)))
            return scenario.replace(network=net)
        if name == "latency":
            net = dataclasses.replace(scenario.network, latency=parse_latency(value))
            return scenario.replace(network=net)
        if name == "batch":
            knobs = dict(scenario.consensus)
            knobs["batch_max_count"] = int(value)
            return scenario.replace(consensus=tuple(sorted(knobs.items())))
    except ValueError as exc:
        raise ScenarioError(f"--param {name}={value}: {exc}") from exc
    raise ScenarioError(f"unknown sweep knob {name!r}")


def describe(scenario: Scenario) -> dict[str, str]:
    """The knob values of ``scenario`` as they appear in the CSV."""
    cfg = scenario.consensus_config()
    loss = scenario.network.loss_ppm
    return {
        "n": str(scenario.n),
        "loss": f"{loss // 1_000_000}.{loss % 1_000_000:06d}".rstrip("0").rstrip("."),
        "latency": scenario.network.latency.label(),
        "batch": str(cfg.batch_max_count),
    }


@dataclass
class Combo:
    knobs: dict[str, str]
    scenario: Scenario
    rows: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)

    def label(self, vary: Sequence[str]) -> str:
        return " ".join(f"{k}={self.knobs[k]}" for k in vary) or self.scenario.name


def combos(base: Scenario, params: list[tuple[str, list[str]]]) -> Iterator[Combo]:
    names = [name for name, _ in params]
    for values in itertools.product(*(vals for _, vals in params)):
        s = base
        for name, value in zip(names, values, strict=True):
            s = apply(s, name, value)
        yield Combo(describe(s), s)


def run_sweep(
    base: Scenario,
    params: list[tuple[str, list[str]]],
    seeds: int,
    first_seed: int = 0,
    kit: ReplicaKit | None = None,
    progress: Callable[[Combo, int, dict[str, Any]], None] | None = None,
) -> list[Combo]:
    done: list[Combo] = []
    for combo in combos(base, params):
        for seed in range(first_seed, first_seed + seeds):
            sim = Simulation(combo.scenario, seed, kit).run()
            rep = report.build(sim)
            combo.latencies.extend(sim.metrics.latencies)
            combo.rows.append(row(combo, rep))
            if progress is not None:
                progress(combo, seed, rep)
        done.append(combo)
    return done


def row(combo: Combo, rep: dict[str, Any]) -> dict[str, Any]:
    lat = rep["commit_latency_ms"]
    bad = [k for k, v in rep["invariants"].items() if not v["ok"]]
    return {
        "scenario": rep["scenario"],
        **combo.knobs,
        "seed": rep["seed"],
        "ok": int(rep["ok"]),
        "blocks": rep["blocks_committed"],
        "txs": rep["txs_committed"],
        "throughput_tps": rep["throughput_tps"],
        "latency_p50_ms": "" if lat["p50"] is None else lat["p50"],
        "latency_p95_ms": "" if lat["p95"] is None else lat["p95"],
        "latency_p99_ms": "" if lat["p99"] is None else lat["p99"],
        "view_changes": rep["view_changes"]["events"],
        "messages": rep["messages"]["total"],
        "messages_per_block": rep["messages"]["total_per_block"],
        "virtual_time_ms": rep["virtual_time_ms"],
        "violations": " ".join(bad),
    }


def write_csv(path: Path, done: Sequence[Combo]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for combo in done:
            writer.writerows(combo.rows)
