"""One chaos run: real nodes, client workload, a fault schedule, then the checker's verdict.

``run_chaos(RunConfig(...))``:

1. makes a proxied ``TestNetwork`` (every peer link through ``tests.chaos.proxy``),
   every node under its libfaketime clock file (``ClockControl``), the data
   directory of each node the schedule fills on a small tmpfs (``SmallDisk``);
2. starts the workload clients (``Workload``) and a resource sampler (RSS and
   open fds of every node process, every ``SAMPLE_S``);
3. plays the schedule (``Nemesis``) on this thread, then lets the run go on
   quietly until the schedule's duration;
4. stops submitting and reads on until every tx is found or ``drain_s`` passes,
   waits until the honest nodes stand at one height, and dumps their chains;
5. checks (``tests.chaos.checker.check_all`` with the recovery bound and the
   resource samples, plus ``check_accepted_kept``), and writes to ``out``:
   ``schedule.txt``, ``history.jsonl``, ``samples.jsonl``, ``chains.jsonl`` (the
   honest nodes' final chains), ``report.json`` and ``perf.png``.

A run with violations raises ``ChaosFailure`` after writing its report, so the
network keeps its directory and prints the nodes' log tails. The seed and the
schedule text are printed first: ``python -m tests.chaos.run --schedule
out/.../schedule.txt`` or ``--seed S`` repeats the run.

``check_accepted_kept`` is the one rule that needs the run's own knowledge: a
tx an honest node accepted (202) must end in the chain unless that node went down
(killed, restarted, turned Byzantine) in a window that ended after the
submission began (conservatively: even if the tx was gossiped in time): a
mempool lives in memory, and is lost with its process, as the client API
documents; a node that stays up keeps and re-offers what it admitted.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.setup.config import load_config
from tests.chaos.checker import (
    ChainBlock,
    ResourceSample,
    Violation,
    check_all,
    history_stats,
    read_process_resources,
)
from tests.chaos.clock import ClockControl
from tests.chaos.disk import SmallDisk
from tests.chaos.history import HistoryWriter, Op, completions, fault_spans, read_history
from tests.chaos.nemesis import Nemesis
from tests.chaos.plot import render
from tests.chaos.schedule import Fault, Schedule, byzantine_nodes, describe, disk_nodes
from tests.chaos.workload import Workload
from tests.functional.framework import TestNetwork
from tests.functional.framework.node import configure_home

SAMPLE_S = 2.0
DISK_BYTES = 512 << 20  # a small disk: room for a long run, filled in a second
DOWN_KINDS = ("kill", "restart-all", "byzantine")  # faults that end a node's process


class ChaosFailure(AssertionError):
    """A run whose checker found violations (the report says which)."""


@dataclass
class RunConfig:
    schedule: Schedule
    out: Path
    seed: int = 0
    clients: int = 4
    rate: float = 4.0  # submissions per second per client
    recovery_bound_s: float = 60.0
    drain_s: float = 60.0
    converge_s: float = 180.0
    max_rss_growth_bytes: int = 256 << 20
    max_fd_growth: int = 64


@dataclass
class Report:
    violations: list[Violation]
    stats: dict[str, int]
    data: dict[str, Any] = field(default_factory=dict)


class _Sampler(threading.Thread):
    """Reads RSS and open fds of every running node process every ``SAMPLE_S``."""

    def __init__(self, net: TestNetwork) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.net = net
        self.samples: list[ResourceSample] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_S):
            for node in self.net.nodes:
                proc = node.proc
                if proc is None or proc.poll() is not None:
                    continue
                try:
                    rss, fds = read_process_resources(proc.pid)
                except OSError:  # it just exited
                    continue
                self.samples.append(
                    ResourceSample(node.index, proc.pid, time.monotonic_ns(), rss, fds)
                )


def _move_data_to_disk(net: TestNetwork, i: int, disk: SmallDisk) -> None:
    """Node ``i``'s data directory, as made by the testnet, moves onto ``disk``."""
    home = net.nodes[i].home
    data = load_config(home, env={}).data_dir
    mount = disk.mount(net.dir / f"disk{i}", DISK_BYTES)
    shutil.copytree(data, mount / "data")
    shutil.rmtree(data)
    configure_home(home, {"node.data_dir": json.dumps(str(mount / "data"))})
    net.log(f"node{i}'s data directory is on a {DISK_BYTES >> 20} MiB tmpfs at {mount}")


def check_accepted_kept(
    history: Sequence[Op],
    chains: Mapping[int, Sequence[ChainBlock]],
    honest: Sequence[int],
    n: int,
) -> tuple[list[Violation], dict[str, int]]:
    """Accepted txs missing from the final chain whose accepting node never went down
    after accepting them (module docstring); and the counts for the report."""
    in_chain: set[str] = set()
    for i in honest:
        for block in chains.get(i, ()):
            in_chain.update(block.tx_hashes)
    downs: dict[int, list[int]] = {}  # node -> the ends of the windows that took it down
    for span in fault_spans(history):
        kind = span.kind
        if kind not in DOWN_KINDS:
            continue
        fault = Fault.parse(span.fault)
        if kind == "restart-all":
            nodes: Sequence[int] = range(n)
        elif kind == "byzantine":
            nodes = [fault.get_int("node")]
        else:
            nodes = fault.get_nodes("nodes")
        for i in nodes:
            downs.setdefault(i, []).append(span.end_ns if span.end_ns is not None else 1 << 62)
    # tx -> (node, when its submission was invoked), of its first acceptance: the node may
    # have lost it in a window that ended after that (the kill can come before the 202)
    accepted: dict[str, tuple[int, int]] = {}
    for inv, done in completions(history):
        ok = inv.f == "submit" and done is not None and done.type == "ok"
        node = inv.node
        if ok and inv.tx and node is not None and node in honest:  # a Byzantine 202: nothing
            accepted.setdefault(inv.tx, (node, inv.mono_ns))
    missing = {tx: where for tx, where in accepted.items() if tx not in in_chain}
    violations = []
    lost_with_node = 0
    for tx, (node, when) in sorted(missing.items()):
        if any(end >= when for end in downs.get(node, [])):
            lost_with_node += 1
            continue
        violations.append(
            Violation(
                "accepted-kept",
                f"tx {tx[:12]} accepted by node {node}, which never went down after, "
                "is in no honest chain",
            )
        )
    counts = {
        "accepted": len(accepted),
        "accepted_in_chain": len(accepted) - len(missing),
        "accepted_lost_with_their_node": lost_with_node,
        "accepted_lost_otherwise": len(violations),
    }
    return violations, counts


def _dump_chains(net: TestNetwork, nodes: Sequence[int]) -> dict[int, list[ChainBlock]]:
    out: dict[int, list[ChainBlock]] = {}
    for i in nodes:
        top = net.height(i)
        out[i] = [ChainBlock.from_api(net.block(i, h)) for h in range(1, top + 1)]
    return out


def run_chaos(config: RunConfig) -> Report:
    """One run (module docstring); ``ChaosFailure`` if the checker found violations."""
    schedule = config.schedule
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("history.jsonl", "samples.jsonl", "chains.jsonl", "report.json", "perf.png"):
        (out / name).unlink(missing_ok=True)
    text = describe(schedule)
    (out / "schedule.txt").write_text(text, encoding="utf-8")
    print(f"chaos run: {schedule.nodes} validators, seed {config.seed}, output in {out}")
    print(text, flush=True)

    n = schedule.nodes
    honest = [i for i in range(n) if i not in byzantine_nodes(schedule)]
    clocks = ClockControl(out / "clocks", n)
    disks = {i: SmallDisk() for i in sorted(disk_nodes(schedule))}

    def prepare(net: TestNetwork) -> None:
        for i, disk in disks.items():
            _move_data_to_disk(net, i, disk)

    net = TestNetwork(
        n,
        name=f"chaos{n}",
        proxied=True,
        proxy_seed=config.seed,
        env={i: clocks.env_for(i) for i in range(n)},
        prepare=prepare,
    )
    try:
        with net:
            report = _run(config, net, clocks, disks, honest)
    finally:
        for disk in disks.values():
            disk.unmount()
    return report


def _run(
    config: RunConfig,
    net: TestNetwork,
    clocks: ClockControl,
    disks: Mapping[int, SmallDisk],
    honest: list[int],
) -> Report:
    schedule, out = config.schedule, config.out
    history_path = out / "history.jsonl"
    sampler = _Sampler(net)
    with HistoryWriter(history_path) as history:
        workload = Workload(
            history,
            [node.api for node in net.nodes],
            net.chain_id,
            [node.member_key for node in net.nodes],
            clients=config.clients,
            rate=config.rate,
            seed=config.seed,
        )
        nemesis = Nemesis(net, history, clocks, disks)
        t0 = time.monotonic()
        sampler.start()
        workload.start()
        try:
            nemesis.play(schedule, t0)
            Nemesis._wait_until(t0 + schedule.duration)
            net.log("schedule done; draining the clients")
            unconfirmed = workload.drain(config.drain_s)
        finally:
            workload.stop()
        net.log(f"clients stopped ({unconfirmed} txs never found in a block by them)")
        net.wait_connected(honest, timeout=60)  # a Byzantine node may stay banned
        height = net.wait_same_height(honest, timeout=config.converge_s)
        chains = _dump_chains(net, honest)
        sampler.halt.set()
        sampler.join()
    ops = read_history(history_path)
    with (out / "chains.jsonl").open("w", encoding="utf-8") as f:  # for a re-check offline
        for i, chain in chains.items():
            for block in chain:
                f.write(json.dumps({"node": i, **dataclasses.asdict(block)}) + "\n")
    with (out / "samples.jsonl").open("w", encoding="utf-8") as f:
        for s in sampler.samples:
            f.write(json.dumps(s.__dict__) + "\n")
    violations = check_all(
        ops,
        chains,
        n=schedule.nodes,
        honest=honest,
        recovery_bound_s=config.recovery_bound_s,
        samples=sampler.samples,
        max_rss_growth_bytes=config.max_rss_growth_bytes,
        max_fd_growth=config.max_fd_growth,
    )
    kept, counts = check_accepted_kept(ops, chains, honest, schedule.nodes)
    violations += kept
    stats = history_stats(ops)
    render(
        ops,
        out / "perf.png",
        title=f"hygeia chaos: {schedule.nodes} validators, seed {config.seed}",
    )
    data: dict[str, Any] = {
        "seed": config.seed,
        "nodes": schedule.nodes,
        "honest": honest,
        "duration_s": schedule.duration,
        "faults_injected": dict(sorted(nemesis.injected.items())),
        "windows": len(schedule.windows),
        "final_height": height,
        "txs": counts,
        "lost_committed": sum(
            1 for v in violations if v.rule in ("same-location", "monotonic-read")
        ),
        "history": stats,
        "workload": workload.stats(),
        "max_rss_mib": _max_by_node(sampler.samples, "rss_bytes", 1 << 20),
        "max_fds": _max_by_node(sampler.samples, "fds", 1),
        "violations": [{"rule": v.rule, "message": v.message} for v in violations],
        "schedule": schedule.text(),
    }
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    summary = (
        f"chaos run done: {len(violations)} violations; height {height}; "
        f"{sum(nemesis.injected.values())} faults; txs {counts}"
    )
    net.log(summary)
    if violations:
        listing = "\n".join(f"  {v}" for v in violations[:30])
        raise ChaosFailure(f"{summary}\n{listing}\nreport: {out / 'report.json'}")
    return Report(violations, stats, data)


def _max_by_node(samples: Sequence[ResourceSample], attr: str, scale: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for s in samples:
        key = f"node{s.node}"
        best[key] = max(best.get(key, 0.0), round(getattr(s, attr) / scale, 1))
    return dict(sorted(best.items()))
