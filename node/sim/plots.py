"""PNG plots of a sweep (matplotlib, Agg backend): latency CDF and costs against n."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from node.sim.sweep import Combo


def _finish(
    fig: Figure, ax: Axes, path: Path, xlabel: str, ylabel: str, title: str, *, legend: bool
) -> None:
    """Label, grid and save one plot, then free the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_cdf(path: Path, done: Sequence[Combo], vary: Sequence[str]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for combo in done:
        lat = sorted(combo.latencies)
        if not lat:
            continue
        ys = [(i + 1) / len(lat) for i in range(len(lat))]
        ax.step(lat, ys, where="post", label=combo.label(vary))
    _finish(
        fig,
        ax,
        path,
        "commit latency (virtual ms, arrival to first honest commit)",
        "fraction of transactions",
        "Commit latency CDF",
        legend=bool(done),
    )


def against_n(
    path: Path, done: Sequence[Combo], vary: Sequence[str], column: str, ylabel: str
) -> None:
    """Median of ``column`` over seeds against n, one line per other-knob combination."""
    others = [k for k in vary if k != "n"]
    lines: dict[str, list[tuple[int, float]]] = {}
    for combo in done:
        values = [float(r[column]) for r in combo.rows if r[column] != ""]
        if not values:
            continue
        key = " ".join(f"{k}={combo.knobs[k]}" for k in others) or combo.scenario.name
        lines.setdefault(key, []).append((int(combo.knobs["n"]), statistics.median(values)))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, points in lines.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
    _finish(
        fig,
        ax,
        path,
        "validators (n)",
        ylabel,
        f"{ylabel} against n (median over seeds)",
        legend=bool(lines),
    )


def draw_all(out: Path, done: Sequence[Combo], vary: Sequence[str]) -> list[Path]:
    paths = [
        out / "latency_cdf.png",
        out / "throughput_vs_n.png",
        out / "messages_per_block_vs_n.png",
    ]
    latency_cdf(paths[0], done, vary)
    against_n(paths[1], done, vary, "throughput_tps", "throughput (tx/s, virtual time)")
    against_n(paths[2], done, vary, "messages_per_block", "messages per committed block")
    return paths
