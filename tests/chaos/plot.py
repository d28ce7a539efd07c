"""The performance graph of a chaos run (PNG, matplotlib Agg), as Jepsen's perf graphs.

Two panels sharing one time axis (seconds from the first op of the history):

* commit latency: one point per transaction seen in a block, at the time its
  first submission was invoked, at the height of its latency (from that
  invoke to the completion of the first status read that found it in a
  block); submissions that failed, or whose outcome is unknown (``info``), or
  that were accepted and never seen in a block, as markers along the top;
* throughput: transactions first seen in a block per second (bins of
  ``bin_s``).

Fault windows are shaded on both panels, one colour per fault kind. Times are
what the clients observed: a status read's completion stands for the commit,
so the latency is an upper bound (by the readers' polling interval).
``perf_series`` computes the numbers alone (tested without drawing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tests.chaos.history import FaultSpan, Op, completions, fault_spans

NS = 1e9


@dataclass(frozen=True)
class PerfSeries:
    """The numbers behind the graph, in seconds from ``t0_ns``."""

    t0_ns: int
    end_s: float
    latency: list[tuple[float, float]]  # (first submit invoke, latency) per tx seen in a block
    failed: list[float]  # submit invokes that failed
    unknown: list[float]  # submit invokes with an info outcome
    lost: list[float]  # accepted, never seen in a block: first submit invoke
    throughput: list[tuple[float, int]]  # (bin start, txs first seen in a block in the bin)
    spans: list[tuple[float, float, str]]  # (start, end, fault kind) of each window


def perf_series(
    history: Sequence[Op], spans: Sequence[FaultSpan] | None = None, bin_s: float = 1.0
) -> PerfSeries:
    windows = fault_spans(history) if spans is None else list(spans)
    times = [op.mono_ns for op in history] + [w.start_ns for w in windows]
    t0 = min(times, default=0)
    end_ns = max([*times, *(w.end_ns for w in windows if w.end_ns is not None)], default=t0)

    def rel(ns: int) -> float:
        return (ns - t0) / NS

    first_submit: dict[str, int] = {}
    accepted: set[str] = set()
    seen: dict[str, int] = {}  # tx -> first completion that found it in a block
    failed: list[float] = []
    unknown: list[float] = []
    for inv, done in completions(history):
        if inv.tx is None:
            continue
        if inv.f == "submit":
            first_submit.setdefault(inv.tx, inv.mono_ns)
            if done is None or done.type == "info":
                unknown.append(rel(inv.mono_ns))
            elif done.type == "fail":
                failed.append(rel(inv.mono_ns))
            else:
                accepted.add(inv.tx)
        elif done is not None and done.in_chain:
            seen[inv.tx] = min(seen.get(inv.tx, done.mono_ns), done.mono_ns)
    latency = sorted(
        (rel(first_submit[tx]), (at - first_submit[tx]) / NS)
        for tx, at in seen.items()
        if tx in first_submit
    )
    lost = sorted(rel(first_submit[tx]) for tx in accepted - seen.keys())
    bins: dict[int, int] = {}
    for at in seen.values():
        k = int(rel(at) // bin_s)
        bins[k] = bins.get(k, 0) + 1
    last_bin = int(rel(end_ns) // bin_s)
    throughput = [(k * bin_s, bins.get(k, 0)) for k in range(last_bin + 1)] if seen else []
    return PerfSeries(
        t0_ns=t0,
        end_s=rel(end_ns),
        latency=latency,
        failed=sorted(failed),
        unknown=sorted(unknown),
        lost=lost,
        throughput=throughput,
        spans=[
            (rel(w.start_ns), rel(w.end_ns if w.end_ns is not None else end_ns), w.kind)
            for w in windows
        ],
    )


def render(
    history: Sequence[Op],
    path: Path,
    *,
    spans: Sequence[FaultSpan] | None = None,
    title: str = "hygeia chaos run",
    bin_s: float = 1.0,
) -> Path:
    """Draw the graph of ``history`` (fault windows from it, or ``spans``) to ``path``."""
    data = perf_series(history, spans, bin_s)
    fig, (lat_ax, tp_ax) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    cmap = plt.get_cmap("tab20")
    strong_first = [*range(0, 20, 2), *range(1, 20, 2)]  # tab20's dark shades, then light
    kinds = sorted({s[2] for s in data.spans})
    colours = {kind: cmap(strong_first[k % 20]) for k, kind in enumerate(kinds)}
    shaded: set[str] = set()
    for start, end, kind in data.spans:
        for ax in (lat_ax, tp_ax):
            ax.axvspan(
                start, max(end, start + 0.05), color=colours[kind], alpha=0.2,
                label=f"fault: {kind}" if ax is lat_ax and kind not in shaded else None,
                linewidth=0,
            )  # fmt: skip
        shaded.add(kind)

    if data.latency:
        lat_ax.scatter(
            [x for x, _ in data.latency], [y for _, y in data.latency],
            s=6, color="tab:blue", label="committed", zorder=3,
        )  # fmt: skip
        top = max(y for _, y in data.latency) * 1.12 or 1.0
    else:
        top = 1.0
    for xs, marker, colour, label in (
        (data.failed, "x", "tab:red", "refused"),
        (data.unknown, "|", "tab:orange", "unknown (info)"),
        (data.lost, "v", "black", "accepted, never seen committed"),
    ):
        if xs:
            lat_ax.scatter(xs, [top] * len(xs), marker=marker, s=18, color=colour,
                           label=label, zorder=3)  # fmt: skip
    lat_ax.set_ylabel("commit latency (s)")
    lat_ax.set_ylim(0, top * 1.06)  # the outcome markers get a band of their own at the top
    lat_ax.set_title(title)
    lat_ax.grid(True, alpha=0.3)
    if data.latency or data.spans or data.failed or data.unknown or data.lost:
        lat_ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))

    if data.throughput:
        tp_ax.step(
            [x for x, _ in data.throughput], [c / bin_s for _, c in data.throughput],
            where="post", color="tab:green",
        )  # fmt: skip
    tp_ax.set_ylabel("commits per second")
    tp_ax.set_xlabel("time since the first op (s)")
    tp_ax.set_xlim(0, max(data.end_s, 1.0))
    tp_ax.set_ylim(bottom=0)
    tp_ax.grid(True, alpha=0.3)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
