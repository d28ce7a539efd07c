"""``make bench``: the simulator bench, then load benches on fresh local testnets.

``python -m node.bench.run_all [--seconds 60] [--warmup 5] [--runs 1] ...``

1. ``python -m node.bench.sim_bench`` (virtual time, no network), its JSON
   saved as ``OUT/sim.json``, and ``python -m node.bench.apply_all`` (ledger
   apply throughput per transaction type, one core) as ``OUT/apply.json``;
2. for each run and each scenario, a fresh 4-validator testnet in a temporary
   directory, started with ``hygeia testnet start`` in the background; once
   every node answers and sees its 3 peers, the load bench runs against it;
   then the testnet is stopped cleanly (SIGINT, as Ctrl-C would) and deleted.
   Scenarios: closed loop at ``--concurrency`` (the maximum throughput) and
   open loop at ``--rate`` tx/s (the latency at a given load). A fresh network
   per run keeps one run's chain, caches and peak RSS out of the next one.
3. ``OUT/load-<scenario>-run<i>.json`` per run and ``OUT/summary.json``: the
   median of each figure over the runs and the goals of the issue, met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

from node.api.remote import ClientError, request_json
from node.bench import procs
from node.bench.load import run_load
from node.bench.progress import make_progress
from node.bench.workload import LoadConfig, load_testnet
from node.setup.testnet import node_ports, testnet_init

VALIDATORS: Final = 4
GOAL_TPS: Final = 1000.0
GOAL_P99_MS: Final = 1000.0
GOAL_RSS_MB: Final = 300.0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ testnet
def _ports_free(ports: Sequence[int]) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(validators: int = VALIDATORS, start: int = 38000) -> int:
    """A base port whose ``3 * validators`` testnet ports are all free now."""
    for base in range(start, 60000, 100):
        ports = [p for i in range(validators) for p in node_ports(base, i)]
        if _ports_free(ports):
            return base
    raise RuntimeError("no free port range for a local testnet")


@contextlib.contextmanager
def local_testnet(
    workdir: Path,
    log: IO[bytes],
    *,
    validators: int = VALIDATORS,
    ready_timeout_s: float = 60.0,
) -> Iterator[Path]:
    """A fresh running testnet in ``workdir``; stopped cleanly when the block exits."""
    base = free_base_port(validators)
    testnet_init(workdir, validators=validators, base_port=base)
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "testnet", "start", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(workdir, proc, ready_timeout_s, validators)
        yield workdir
    finally:
        _stop(proc, workdir, validators)


def _wait_ready(
    workdir: Path, proc: subprocess.Popen[bytes], timeout_s: float, validators: int
) -> None:
    _, targets, _ = load_testnet(workdir)
    deadline = time.monotonic() + timeout_s
    waiting = list(targets)
    while waiting:
        if proc.poll() is not None:
            raise RuntimeError(f"`hygeia testnet start` exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"testnet not ready after {timeout_s:g} s: {waiting[0].name}")
        t = waiting[0]
        try:
            request_json("GET", t.api + "/v1/info", timeout=2)
            status = request_json("GET", f"{t.admin}/status", token=t.admin_token, timeout=2)
            if int(status.get("peers", 0)) >= validators - 1:
                waiting.pop(0)
                continue
        except ClientError:
            pass
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], workdir: Path, validators: int) -> None:
    """Ctrl-C for ``testnet start`` (it stops every node with SIGTERM and waits)."""
    homes = [str(workdir / f"node{i}") for i in range(validators)]
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # nodes run in their own sessions: make sure none outlived the launcher
    for home in homes:
        pid = procs.find_node_pid(home)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for_quiet(max_busy: float, timeout_s: float, sample_s: float = 5.0) -> float | None:
    """Wait until the whole machine uses at most ``max_busy`` percent of one core
    (measured over ``sample_s``), or ``timeout_s`` passed; the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = procs.machine_cpu()
        time.sleep(sample_s)
        busy = procs.busy_percent(before, procs.machine_cpu())
        if busy is None or busy <= max_busy or time.monotonic() >= deadline:
            return busy
        _say(f"   the machine is busy ({busy:g} % of a core): waiting for it to quiet down")


# ------------------------------------------------------------------ runs
def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 1) if known else None


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over runs per scenario, and the goals of the issue."""
    out: dict[str, Any] = {}
    for name, runs in results.items():
        out[name] = {
            "runs": len(runs),
            "committed_tps": _median([r["committed_tps"] for r in runs]),
            "committed_tps_runs": [r["committed_tps"] for r in runs],
            "committed_tps_min_10s": _median([r["committed_tps_min_10s"] for r in runs]),
            "latency_p50_ms": _median([r["latency_ms"]["p50"] for r in runs]),
            "latency_p95_ms": _median([r["latency_ms"]["p95"] for r in runs]),
            "latency_p99_ms": _median([r["latency_ms"]["p99"] for r in runs]),
            "latency_p99_ms_runs": [r["latency_ms"]["p99"] for r in runs],
            "peak_rss_mb_max": _median(
                [
                    max((v for v in r["peak_rss_mb"].values() if v is not None), default=None)
                    for r in runs
                ]
            ),
            "node_cpu_percent": _median(
                [statistics.mean(n["cpu_percent"] or 0.0 for n in r["nodes"]) for r in runs]
            ),
            "node_cpu_ms_per_tx": _median([r.get("node_cpu_ms_per_tx") for r in runs]),
            "client_cpu_percent": _median([r["client"]["cpu_percent"] for r in runs]),
            "other_cpu_percent": _median([r["host"]["other_processes_cpu_percent"] for r in runs]),
            "view_changes": sum(
                max((n["view_end"] or 0) - (n["view_start"] or 0) for n in r["nodes"]) for r in runs
            ),
            "errors": _sum_counts([r["errors"] for r in runs]),
            "not_committed": sum(r["not_committed"] for r in runs),
        }
    goals: dict[str, Any] = {}
    closed = out.get("closed")
    if closed is not None:
        goals["closed_committed_tps>=1000"] = _goal(closed["committed_tps"], GOAL_TPS, True)
    open_ = out.get("open")
    if open_ is not None:
        goals["open_p99_ms<=1000"] = _goal(open_["latency_p99_ms"], GOAL_P99_MS, False)
    rss = [s["peak_rss_mb_max"] for s in out.values() if s["peak_rss_mb_max"] is not None]
    goals["peak_rss_mb<=300"] = _goal(max(rss) if rss else None, GOAL_RSS_MB, False)
    out["goals"] = goals
    return out


def _goal(value: float | None, target: float, at_least: bool) -> dict[str, Any]:
    met = None if value is None else (value >= target if at_least else value <= target)
    return {"value": value, "target": target, "met": met}


def _sum_counts(maps: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def run_module(
    out_dir: Path, module: str, name: str, args: Sequence[str] = ()
) -> dict[str, Any] | None:
    """Run ``python -m node.bench.<module> ARGS`` and keep its JSON as ``OUT/<name>.json``."""
    _say(f"== {name} bench: python -m node.bench.{module} {' '.join(args)}")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", f"node.bench.{module}", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        _say(f"{name} bench failed (status {done.returncode}):\n{done.stderr}")
        return None
    (out_dir / f"{name}.json").write_text(done.stdout, encoding="utf-8")
    _say(f"   done in {time.perf_counter() - started:.0f} s -> {out_dir / (name + '.json')}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m node.bench.run_all", description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--drain", type=float, default=15.0)
    ap.add_argument("--runs", type=int, default=1, help="runs of each scenario (medians)")
    ap.add_argument("--rate", type=float, default=500.0, help="open loop tx/s")
    ap.add_argument("--concurrency", type=int, default=500, help="closed loop depth")
    ap.add_argument("--scenarios", default="closed,open", help="comma-separated: closed,open")
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    ap.add_argument("--no-sim", action="store_true", help="skip the simulator bench")
    ap.add_argument(
        "--no-apply", action="store_true", help="skip the ledger apply benches (apply_all)"
    )
    ap.add_argument(
        "--quiet-below",
        type=float,
        metavar="PCT",
        help="before each run, wait until the machine uses at most PCT %% of a core",
    )
    ap.add_argument("--quiet-timeout", type=float, default=600.0, metavar="S")
    ap.add_argument(
        "--validators",
        default="4",
        help="comma-separated testnet sizes; a size other than 4 names its scenarios "
        "<scenario>-n<size>",
    )
    ap.add_argument(
        "--state-sync-txs",
        type=int,
        default=0,
        metavar="N",
        help="also time state sync against replay on a chain of N transactions "
        "(node.bench.state_sync; 0: skip)",
    )
    ap.add_argument(
        "--epoch-switch",
        action="store_true",
        help="also measure an epoch switch under load (node.bench.epoch_switch: 5 "
        "validators, one voted out, at --rate tx/s for --seconds)",
    )
    ap.add_argument(
        "--documents",
        action="store_true",
        help="also measure document publish and fetch between two nodes "
        "(node.bench.documents: 10 KiB and 5 MiB FHIR resources)",
    )
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.validators.split(",") if v.strip()]
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "benchmark": "make bench",
        "commit": _git_commit(),
        "machine": procs.machine_info(),
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "drain": args.drain,
            "runs": args.runs,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "quiet_below": args.quiet_below,
            "validators": sizes,
        },
    }
    if not args.no_sim:
        sim = run_module(out_dir, "sim_bench", "sim")
        summary["sim"] = sim["results"] if sim else None
    if not args.no_apply:
        summary["apply"] = run_module(out_dir, "apply_all", "apply")
    if args.state_sync_txs:
        summary["state_sync"] = run_module(
            out_dir, "state_sync", "state-sync", ["--txs", str(args.state_sync_txs)]
        )
    if args.epoch_switch:
        summary["epoch_switch"] = run_module(
            out_dir,
            "epoch_switch",
            "epoch-switch",
            ["--rate", f"{min(args.rate, 300.0):g}", "--seconds", f"{args.seconds:g}"],
        )
    if args.documents:
        summary["documents"] = run_module(out_dir, "documents", "documents")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    runs_of = [(s, n) for n in sizes for s in scenarios]
    results: dict[str, list[dict[str, Any]]] = {
        (s if n == VALIDATORS else f"{s}-n{n}"): [] for s, n in runs_of
    }
    for run in range(1, args.runs + 1):
        for scenario, validators in runs_of:
            name = scenario if validators == VALIDATORS else f"{scenario}-n{validators}"
            cfg = LoadConfig(
                mode="open" if scenario == "open" else "closed",
                rate=args.rate,
                concurrency=args.concurrency,
                duration_s=args.seconds,
                warmup_s=args.warmup,
                drain_s=args.drain,
            )
            what = f"{args.rate:g} tx/s" if scenario == "open" else f"depth {args.concurrency}"
            _say(
                f"== load bench {scenario} loop ({what}), {validators} validators, "
                f"run {run}/{args.runs}"
            )
            busy_before = None
            if args.quiet_below is not None:
                busy_before = wait_for_quiet(args.quiet_below, args.quiet_timeout)
            with (
                tempfile.TemporaryDirectory(prefix="hygeia-bench-") as tmp,
                (out_dir / f"testnet-{name}-run{run}.log").open("wb") as log,
                local_testnet(Path(tmp) / "tn", log, validators=validators) as tn,
            ):
                chain_id, targets, keys = load_testnet(tn)
                report = run_load(
                    cfg, targets, keys, chain_id, progress=make_progress(True), log=_say
                )
            report["host"]["busy_before_percent"] = busy_before
            path = out_dir / f"load-{name}-run{run}.json"
            path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
            lat = report["latency_ms"]
            _say(
                f"   committed {report['committed_tps']} tx/s, latency p50/p95/p99 "
                f"{lat['p50']}/{lat['p95']}/{lat['p99']} ms, peak RSS "
                f"{max((v or 0) for v in report['peak_rss_mb'].values())} MB -> {path}"
            )
            results[name].append(report)
    summary["load"] = summarize(results)
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    (out_dir / "summary.json").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
