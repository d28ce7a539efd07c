"""Seeded random scenarios (``hygeia sim fuzz``), in the spirit of CometBFT's e2e generator.

``generate(seed)`` draws one whole ``Scenario`` from ``random.Random(seed)``
with integer draws only: cluster size (4..10, sometimes 13), consensus knobs
within their valid ranges, latency model, loss, duplication and reordering,
crash-restarts, crashes for good, healing partitions and drop faults, clock
drift, Byzantine behaviours (whatever ``scenario.BEHAVIOURS`` lists), and an
open or closed workload that sometimes stops early so that convergence is
judged. At most f nodes are faulty for good (Byzantine or never restarted),
every partition and drop heals, and ``duration_ms`` leaves room for the
liveness bound after the last fault and for ``stop_at_height``: so every
verdict is owed, and a violation is a finding.

A generated scenario is an ordinary validated ``Scenario``; ``to_toml`` writes
it in the ``configs/scenarios`` format (``scenario.parse`` reads it back to
an equal object), so a failure replays with
``hygeia sim run fuzz-<seed>.toml --seed <seed>``. Scenario ``i`` of a run
started with ``--seed S`` is generated from, and run with, seed ``S + i``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.sim import report
from node.sim.engine import Simulation
from node.sim.scenario import (
    BEHAVIOURS,
    DEFAULT_MAX_FRAME_BYTES,
    PPM,
    ByzantineSpec,
    DriftSpec,
    Fault,
    Latency,
    NetworkSpec,
    Scenario,
    ScenarioError,
    WorkloadSpec,
    droppable_messages,
)

# node/sim/byzantine.py behaviours that need knobs of their own to run cheaply
_SMALL_FRAME = 131_072


def generate(seed: int) -> Scenario:
    """One random, valid scenario; the same seed always gives the same scenario."""
    return _Draw(random.Random(seed)).scenario(f"fuzz-{seed}")


class _Draw:
    """The draws of one scenario, in a fixed order (integers only)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, percent: int) -> bool:
        return self.rng.randrange(100) < percent

    def between(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + self.rng.randrange(hi - lo + 1)

    def pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def nodes(self, pool: list[int], k: int) -> list[int]:
        """k distinct nodes of ``pool``, sorted."""
        return sorted(self.rng.sample(pool, k))

    def names(self, pool: tuple[str, ...], k: int) -> tuple[str, ...]:
        """k distinct names of ``pool``, in the pool's order."""
        chosen = set(self.rng.sample(range(len(pool)), k))
        return tuple(x for i, x in enumerate(pool) if i in chosen)

    # -- the scenario --------------------------------------------------------

    def scenario(self, name: str) -> Scenario:
        n = 13 if self.chance(8) else self.between(4, 10)
        f = (n - 1) // 3
        knobs = self.consensus()
        network = self.network()
        byzantine, byz_knobs, net_knobs = self.byzantine(n, f)
        knobs.update(byz_knobs)
        if net_knobs:
            network = dataclasses.replace(network, **net_knobs)
        faulty = {b.node for b in byzantine}
        faults, fault_end = self.faults(n, f, faulty)
        drift = self.drift(n)
        batch = knobs["batch_max_count"]
        # a slow height: three message delays and the batch timer, or on a lossy
        # network the resend interval after which lost votes are repeated
        height_ms = 4 * _worst_latency(network) + knobs["batch_timeout_ms"] + 50
        if network.loss_ppm >= 20_000:
            height_ms = max(height_ms, knobs["resend_interval_ms"])
        # offer at most a quarter of what the pipeline commits (less on lossy
        # links): an overloaded cluster misses every request deadline by design
        capacity = batch * knobs["pipeline_window"] * 1000 // height_ms
        capacity //= 1 + network.loss_ppm // 20_000
        workload, quiescent, txs = self.workload(fault_end, max(1, capacity // 4))
        stop_at_height = max(1, txs // batch // 2) if quiescent else self.between(3, 25)
        base = Scenario(
            name=name,
            n=n,
            duration_ms=1,
            consensus=tuple(sorted(knobs.items())),
            network=network,
        )
        # on a lossy network every phase may wait for a resend: a looser bound;
        # r faulty primaries in a row cost r doubling view-change timeouts more
        derived = base.liveness_bound()
        lost = faulty | {x.node for x in faults if x.kind == "crash" and x.end_ms is None}
        run = _longest_run(n, lost)
        vct = knobs["view_change_timeout_ms"]
        bound = derived * (1 + network.loss_ppm // 40_000) + vct * ((1 << (run + 1)) - 2)
        if workload.mode == "open":
            block_ms = max(height_ms // knobs["pipeline_window"], 1000 // workload.rate_tps)
        else:
            block_ms = height_ms + workload.think_ms
        progress = workload.start_ms + 3 * stop_at_height * block_ms
        duration = max(fault_end + bound, progress, workload.stop_ms) + bound // 2 + 1000
        if quiescent:
            duration = max(duration, workload.stop_ms + bound + 1000)
        scenario = dataclasses.replace(
            base,
            description="generated by hygeia sim fuzz",
            liveness_bound_ms=0 if bound == derived else bound,
            duration_ms=duration,
            stop_at_height=stop_at_height,
            wire=self.chance(10),
            workload=workload,
            faults=tuple(faults),
            byzantine=tuple(byzantine),
            drift=tuple(drift),
        )
        return _fit_frames(scenario).replace()  # validates

    def consensus(self) -> dict[str, Any]:
        vct = 100 * self.between(5, 20)
        interval = self.pick((2, 4, 8, 16))
        window = interval * self.pick((2, 3, 4))
        resend = vct if self.chance(25) else 100 * self.between(2, vct // 100)
        return {
            "batch_max_count": self.pick((1, 2, 5, 10, 20)),
            "batch_timeout_ms": self.between(5, 50),
            "pipeline_window": min(window, self.between(1, 8)),
            "checkpoint_interval": interval,
            "watermark_window": window,
            "view_change_timeout_ms": vct,
            "request_timeout_ms": vct * self.between(2, 3),
            "resend_interval_ms": resend,
            "status_interval_ms": 100 * self.between(5, 20),
        }

    def latency(self) -> Latency:
        kind = self.pick(("constant", "uniform", "uniform", "normal"))
        if kind == "constant":
            return Latency(kind, self.between(1, 20), 0)
        if kind == "uniform":
            lo = self.between(1, 10)
            return Latency(kind, lo, lo + self.between(0, 40))
        mean = self.between(5, 30)
        return Latency(kind, mean, self.between(0, mean // 3))

    def network(self) -> NetworkSpec:
        loss = 0
        if self.chance(35):  # mostly light loss, sometimes up to 20 %
            loss = 1_000 * (self.between(1, 50) if self.chance(70) else self.between(50, 200))
        return NetworkSpec(
            latency=self.latency(),
            loss_ppm=loss,
            duplicate_ppm=1_000 * self.between(0, 50) if self.chance(20) else 0,
            reorder_ppm=1_000 * self.between(0, 200) if self.chance(20) else 0,
            reorder_ms=self.between(10, 100),
            client_latency=Latency("uniform", 1, self.between(1, 20)),
            status_sync=self.chance(30),
        )

    def byzantine(
        self, n: int, f: int
    ) -> tuple[list[ByzantineSpec], dict[str, Any], dict[str, Any]]:
        k = self.between(0, f) if self.chance(40) else 0
        specs = []
        knobs: dict[str, Any] = {}
        net: dict[str, Any] = {}
        for node in self.nodes(list(range(n)), k):
            behaviour = self.pick(BEHAVIOURS)
            delay = self.between(50, 400) if behaviour == "delay" else 0
            count = self.between(20, 100) if behaviour == "flood_views" else 0
            if behaviour == "oversized":  # padded frames of the limit's size: keep it small
                net["max_frame_bytes"] = _SMALL_FRAME
                knobs["batch_max_bytes"] = _SMALL_FRAME // 2
            specs.append(ByzantineSpec(node, behaviour, delay_ms=delay, count=count))
        return specs, knobs, net

    def faults(self, n: int, f: int, faulty: set[int]) -> tuple[list[Fault], int]:
        """Faults that all end by the returned time (crashes for good: start by it)."""
        faults: list[Fault] = []
        horizon = self.between(500, 4000)
        honest = [i for i in range(n) if i not in faulty]
        lost = self.between(0, f - len(faulty)) if self.chance(30) else 0
        for node in self.nodes(honest, lost):
            faults.append(Fault("crash", self.between(0, horizon), None, node=node))
        down = {x.node for x in faults}
        for _ in range(self.pick((0, 0, 1, 1, 2, 3))):
            at = self.between(0, horizon - 100)
            end = at + self.between(100, horizon - at)
            kind = self.pick(("crash", "partition", "drop"))
            if kind == "crash":
                node = self.pick([i for i in range(n) if i not in down])
                faults.append(Fault("crash", at, end, node=node))
            elif kind == "partition":
                order = list(range(n))
                self.rng.shuffle(order)
                cut = self.between(1, n - 1)
                groups = (tuple(sorted(order[:cut])), tuple(sorted(order[cut:])))
                faults.append(Fault("partition", at, end, groups=groups))
            else:
                names = droppable_messages()
                src = tuple(self.nodes(list(range(n)), self.between(1, n)))
                dst = tuple(self.nodes(list(range(n)), self.between(1, n)))
                k = self.between(1, 2)
                messages = () if self.chance(25) else self.names(names, k)
                faults.append(Fault("drop", at, end, src=src, dst=dst, messages=messages))
        faults.sort(key=lambda x: (x.at_ms, x.kind, x.node))
        end_times = [x.end_ms if x.end_ms is not None else x.at_ms for x in faults]
        return faults, max(end_times, default=0)

    def drift(self, n: int) -> list[DriftSpec]:
        if not self.chance(30):
            return []
        return [
            DriftSpec(i, self.between(-300, 300), self.between(-2000, 2000))
            for i in self.nodes(list(range(n)), self.between(1, n))
        ]

    def workload(self, fault_end: int, max_rate: int) -> tuple[WorkloadSpec, bool, int]:
        """(spec, quiescent, transactions a quiescent run submits)."""
        tx_size = self.pick((16, 64, 64, 256))
        if self.chance(70):
            rate = min(max_rate, self.pick((20, 50, 100, 200)))
            spec = WorkloadSpec("open", rate, self.pick(("fixed", "uniform")), tx_size=tx_size)
        else:
            spec = WorkloadSpec(
                "closed",
                clients=self.between(1, 8),
                think_ms=self.between(0, 50),
                tx_size=tx_size,
            )
        if not self.chance(35):
            return spec, False, 0
        # quiescent: the load stops, before or after the last fault ends
        if spec.mode == "open":
            stop = self.between(300, fault_end + 2000)
            txs = spec.rate_tps * stop // 1000
            if spec.arrival == "uniform":
                txs //= 2
            return dataclasses.replace(spec, stop_ms=stop), True, txs
        txs = self.between(10, 200)
        return dataclasses.replace(spec, max_txs=txs), True, txs


def _fit_frames(s: Scenario) -> Scenario:
    """Double a small frame limit (``oversized``) until the largest NEW-VIEW and
    PRE-PREPARE of the drawn window and batch fit: the config check refuses less."""
    while True:
        try:
            s.consensus_config()
            return s
        except ScenarioError:
            frame = s.network.max_frame_bytes
            if frame >= DEFAULT_MAX_FRAME_BYTES:
                raise
            s = dataclasses.replace(
                s, network=dataclasses.replace(s.network, max_frame_bytes=2 * frame)
            )


def _longest_run(n: int, nodes: set[int]) -> int:
    """Most consecutive view numbers (ids mod n) whose primary is in ``nodes``."""
    best = run = 0
    for i in range(2 * n):
        run = run + 1 if i % n in nodes else 0
        best = max(best, min(run, n))
    return best


def _worst_latency(net: NetworkSpec) -> int:
    lat = net.latency
    worst = {"constant": lat.a, "uniform": lat.b}.get(lat.kind, lat.a + 3 * lat.b)
    return worst + (net.reorder_ms if net.reorder_ppm else 0)


# -- TOML ----------------------------------------------------------------------


def to_toml(s: Scenario) -> str:
    """``s`` in the configs/scenarios format; ``scenario.parse`` reads it back equal."""
    out: list[str] = []
    structured = {
        "consensus",
        "network",
        "workload",
        "faults",
        "byzantine",
        "drift",
        "validator_changes",
    }
    default = Scenario(name=s.name, n=s.n, duration_ms=s.duration_ms)
    for fl in dataclasses.fields(Scenario):
        if fl.name in structured:
            continue
        value = getattr(s, fl.name)
        if fl.name in ("name", "n", "duration_ms") or value != getattr(default, fl.name):
            out.append(f"{fl.name} = {_value(value)}")
    if s.consensus:
        out += ["", "[consensus]", *[f"{k} = {_value(v)}" for k, v in s.consensus]]
    out += ["", "[network]", *_network(s.network)]
    out += ["", "[workload]", *_plain(s.workload, WorkloadSpec())]
    for rule in s.network.links:
        out += ["", "[[network.links]]", f"from = {_value(rule.src)}", f"to = {_value(rule.dst)}"]
        if rule.latency is not None:
            out.append(f"latency = {_latency(rule.latency)}")
        for key, ppm in (
            ("loss", rule.loss_ppm),
            ("duplicate", rule.duplicate_ppm),
            ("reorder", rule.reorder_ppm),
        ):
            if ppm is not None:
                out.append(f"{key} = {_ppm(ppm)}")
    for fault in s.faults:
        out += ["", "[[faults]]", *_fault(fault)]
    for b in s.byzantine:
        out += ["", "[[byzantine]]", *_plain(b, None)]
    for d in s.drift:
        out += ["", "[[drift]]", *_plain(d, None)]
    for c in s.validator_changes:
        out += ["", "[[validator_changes]]", *_plain(c, None)]
    return "\n".join(out) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ScenarioError(f"cannot write {v!r} as TOML")


def _ppm(ppm: int) -> str:
    return f"{ppm // PPM}.{ppm % PPM:06d}"


def _latency(lat: Latency) -> str:
    if lat.kind == "constant":
        return f'{{ dist = "constant", ms = {lat.a} }}'
    if lat.kind == "uniform":
        return f'{{ dist = "uniform", min_ms = {lat.a}, max_ms = {lat.b} }}'
    return f'{{ dist = "normal", mean_ms = {lat.a}, jitter_ms = {lat.b} }}'


def _plain(obj: Any, default: Any) -> list[str]:
    """Fields named as their TOML keys; those equal to ``default``'s are left out."""
    lines = []
    for fl in dataclasses.fields(obj):
        value = getattr(obj, fl.name)
        if default is None or value != getattr(default, fl.name):
            lines.append(f"{fl.name} = {_value(value)}")
    return lines


def _network(net: NetworkSpec) -> list[str]:
    lines = [f"latency = {_latency(net.latency)}"]
    default = NetworkSpec()
    for fl in dataclasses.fields(net):
        name, value = fl.name, getattr(net, fl.name)
        if name in ("latency", "links") or value == getattr(default, name):
            continue
        if name.endswith("_ppm"):
            lines.append(f"{name[: -len('_ppm')]} = {_ppm(value)}")
        elif name == "client_latency":
            lines.append(f"client_latency = {_latency(value)}")
        else:
            lines.append(f"{name} = {_value(value)}")
    return lines


def _fault(f: Fault) -> list[str]:
    lines = [f"kind = {_value(f.kind)}", f"at_ms = {f.at_ms}"]
    if f.end_ms is not None:
        lines.append(f"{'restart_ms' if f.kind == 'crash' else 'heal_ms'} = {f.end_ms}")
    if f.kind == "crash":
        lines.append(f"node = {f.node}")
    elif f.kind == "partition":
        lines.append(f"groups = {_value(f.groups)}")
    else:
        if f.src:
            lines.append(f"from = {_value(f.src)}")
        if f.dst:
            lines.append(f"to = {_value(f.dst)}")
        if f.messages:
            lines.append(f"messages = {_value(f.messages)}")
    return lines


# -- running -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    seed: int
    ok: bool
    violated: tuple[str, ...]
    first: str  # the first violation's detail (JSON), "" when ok


def run_seed(seed: int) -> Outcome:
    """Generate scenario ``seed`` and run it with the same seed."""
    rep = report.build(Simulation(generate(seed), seed).run())
    bad = tuple(k for k, v in rep["invariants"].items() if not v["ok"])
    first = ""
    if bad:
        first = json.dumps({bad[0]: rep["invariants"][bad[0]]["first"]}, sort_keys=True)
    return Outcome(seed, bool(rep["ok"]), bad, first)


def run_many(
    first_seed: int, count: int, jobs: int = 1, runner: Callable[[int], Outcome] | None = None
) -> Iterator[Outcome]:
    """Outcomes of scenarios ``first_seed .. first_seed + count - 1``, in seed order.
    With ``jobs`` > 1 they run in that many processes (each scenario is still a
    pure function of its seed)."""
    seeds = range(first_seed, first_seed + count)
    runner = runner or run_seed
    if jobs <= 1 or count < 2:
        yield from map(runner, seeds)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap(runner, seeds, chunksize=4)


def write(scenario: Scenario, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scenario.name}.toml"
    path.write_text(to_toml(scenario), encoding="utf-8")
    return path
