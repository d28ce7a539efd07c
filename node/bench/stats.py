"""The figures of a load run: percentiles, per-second counts, and the JSON report.

``RunStats`` is the raw outcome of a run (node/bench/runner.py fills it);
``build_report`` turns it into the report ``hygeia bench`` prints (keys
described in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.bench.workload import LoadConfig


# ------------------------------------------------------------------ statistics
def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ascending values, linearly interpolated
    between closest ranks (NumPy's default); None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    n = len(sorted_values)
    if n == 0:
        return None
    pos = (n - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def _r(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def latency_summary(values_ms: Iterable[float]) -> dict[str, float | int | None]:
    """count, min, mean, p50, p95, p99, max (ms, one decimal) of latencies."""
    vals = sorted(values_ms)
    mean = sum(vals) / len(vals) if vals else None
    return {
        "count": len(vals),
        "min": _r(vals[0]) if vals else None,
        "mean": _r(mean),
        "p50": _r(percentile(vals, 50)),
        "p95": _r(percentile(vals, 95)),
        "p99": _r(percentile(vals, 99)),
        "max": _r(vals[-1]) if vals else None,
    }


def per_second(times: Iterable[float], start: float, duration_s: float) -> list[int]:
    """How many of ``times`` fall in each whole second of ``[start, start + duration)``."""
    buckets = [0] * max(0, math.ceil(duration_s))
    end = start + duration_s
    for t in times:
        if start <= t < end:
            buckets[min(int(t - start), len(buckets) - 1)] += 1
    return buckets


def sliding_min_rate(counts: Sequence[int], width: int) -> float | None:
    """The lowest mean rate over ``width`` consecutive buckets (None if fewer)."""
    if width < 1 or len(counts) < width:
        return None
    total = sum(counts[:width])
    best = total
    for i in range(width, len(counts)):
        total += counts[i] - counts[i - width]
        best = min(best, total)
    return best / width


# ------------------------------------------------------------------ report
@dataclass
class NodeSample:
    name: str
    api: str
    pid: int | None = None
    peak_rss_mb: float | None = None
    max_sampled_rss_mb: float | None = None
    cpu_percent: float | None = None
    height_start: int | None = None
    height_end: int | None = None
    view_start: int | None = None
    view_end: int | None = None
    mempool_end: int | None = None
    blocks_followed: int = 0
    block_fetch_s: float = 0.0  # time spent fetching the blocks followed

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "api": self.api,
            "pid": self.pid,
            "peak_rss_mb": self.peak_rss_mb,
            "max_sampled_rss_mb": self.max_sampled_rss_mb,
            "cpu_percent": self.cpu_percent,
            "height_start": self.height_start,
            "height_end": self.height_end,
            "view_start": self.view_start,
            "view_end": self.view_end,
            "mempool_end": self.mempool_end,
            "blocks_followed": self.blocks_followed,
            "block_fetch_ms_mean": (
                round(1000 * self.block_fetch_s / self.blocks_followed, 1)
                if self.blocks_followed
                else None
            ),
        }


@dataclass
class RunStats:
    """The raw outcome of a run, in seconds from the first send."""

    submitted: int = 0
    accepted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    commit_times: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    errors_outside_window: dict[str, int] = field(default_factory=dict)
    presigned: int = 0
    presign_s: float = 0.0
    exhausted: bool = False
    max_send_lag_ms: float | None = None
    client_cpu_percent: float | None = None
    client_peak_rss_mb: float | None = None
    host_busy_percent: float | None = None
    load_average_start: list[float] | None = None
    nodes: list[NodeSample] = field(default_factory=list)
    started_at: str = ""


def build_report(
    cfg: LoadConfig, stats: RunStats, *, signers: int, machine: dict[str, Any]
) -> dict[str, Any]:
    """The JSON report of one run (keys sorted when dumped)."""
    per_s = per_second(stats.commit_times, cfg.warmup_s, cfg.duration_s)
    committed_in_window = sum(per_s)
    committed = len(stats.latencies_ms)
    return {
        "benchmark": "load",
        "mode": cfg.mode,
        "started_at": stats.started_at,
        "offered_tps": cfg.rate if cfg.mode == "open" else None,
        "concurrency": cfg.concurrency if cfg.mode == "closed" else None,
        "duration_s": cfg.duration_s,
        "warmup_s": cfg.warmup_s,
        "drain_s": cfg.drain_s,
        "nodes_count": len(stats.nodes),
        "signers": signers,
        "presigned": stats.presigned,
        "presign_s": round(stats.presign_s, 2),
        "presign_exhausted": stats.exhausted,
        "submitted": stats.submitted,
        "submitted_tps": round(stats.submitted / cfg.duration_s, 1),
        "accepted": stats.accepted,
        "committed": committed,
        "not_committed": stats.accepted - committed,
        "committed_tps": round(committed_in_window / cfg.duration_s, 1),
        "committed_tps_min_10s": _r(sliding_min_rate(per_s, 10)),
        "node_cpu_ms_per_tx": _cpu_per_tx(stats, committed_in_window, cfg.duration_s),
        "committed_per_s": per_s,
        "latency_ms": latency_summary(stats.latencies_ms),
        "errors": dict(sorted(stats.errors.items())),
        "errors_outside_window": dict(sorted(stats.errors_outside_window.items())),
        "max_send_lag_ms": stats.max_send_lag_ms,
        "peak_rss_mb": {n.name: n.peak_rss_mb for n in stats.nodes},
        "nodes": [n.to_json() for n in stats.nodes],
        "client": {
            "cpu_percent": stats.client_cpu_percent,
            "peak_rss_mb": stats.client_peak_rss_mb,
        },
        "host": {
            "busy_percent": stats.host_busy_percent,
            "other_processes_cpu_percent": _others(stats),
            "load_average_start": stats.load_average_start,
        },
        "machine": machine,
    }


def _cpu_per_tx(stats: RunStats, committed: int, duration_s: float) -> float | None:
    """CPU milliseconds all nodes together spent per transaction committed in the
    window: what the throughput would scale with on a machine of its own."""
    cpus = [n.cpu_percent for n in stats.nodes]
    if not committed or not cpus or any(c is None for c in cpus):
        return None
    return round(sum(c or 0.0 for c in cpus) * 10 * duration_s / committed, 3)


def _others(stats: RunStats) -> float | None:
    """CPU (percent of one core) used in the window by processes that are neither
    the nodes nor this client: other work on the machine skews the figures."""
    known = [n.cpu_percent for n in stats.nodes] + [stats.client_cpu_percent]
    if stats.host_busy_percent is None or any(k is None for k in known):
        return None
    return round(max(0.0, stats.host_busy_percent - sum(k or 0.0 for k in known)), 1)
