"""Unit tests of the performance graph (tests/chaos/plot.py)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from tests.chaos.history import NEMESIS, FaultSpan, Op, check_sequence
from tests.chaos.plot import perf_series, render

S = 1_000_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tx(k: int) -> str:
    return f"{k:064x}"


def op(type_: str, f: str, client: int, number: int, t: float, **kw: object) -> Op:
    return Op(type=type_, f=f, client=client, op=number, wall_ns=0, mono_ns=int(t * S), **kw)  # type: ignore[arg-type]


def synthetic(seed: int = 1, seconds: float = 20.0) -> list[Op]:
    """Three clients submitting a tx every 0.1 s each and reading it until it is in a
    block: latency ~0.3 s, ~2 s inside a fault window from 5 s to 10 s; some
    refusals, timeouts and one tx accepted but never committed."""
    rng = random.Random(seed)
    ops = [
        op("info", "nemesis", NEMESIS, 0, 5.0, fault="isolate node=1", phase="start"),
        op("info", "nemesis", NEMESIS, 0, 10.0, fault="isolate node=1", phase="end"),
        op("info", "nemesis", NEMESIS, 1, 13.0, fault="latency ms=100 jitter_ms=50", phase="start"),
        op("info", "nemesis", NEMESIS, 1, 15.0, fault="latency ms=100 jitter_ms=50", phase="end"),
    ]
    k = 0
    for client in range(3):
        number, t = 0, 0.01 * client
        while t < seconds - 3:
            k += 1
            h, node = tx(k), rng.randrange(4)
            ops.append(op("invoke", "submit", client, number, t, tx=h, node=node))
            roll = rng.random()
            if roll < 0.05:
                done = t + 0.01
                ops.append(op("fail", "submit", client, number, done, tx=h, node=node,
                              code=503, error="mempool-full"))  # fmt: skip
            elif roll < 0.08:
                done = t + 1.0
                ops.append(op("info", "submit", client, number, done, tx=h, node=node,
                              error="timeout"))  # fmt: skip
            else:
                done = t + 0.01
                ops.append(op("ok", "submit", client, number, done, tx=h, node=node,
                              status="accepted", code=202))  # fmt: skip
                if k != 7:  # tx 7: accepted, never seen committed
                    number += 1
                    at = t + (2.0 if 5.0 <= t < 10.0 else 0.3)
                    done = at + 0.01
                    ops.append(op("invoke", "status", client, number, at, tx=h, node=node))
                    ops.append(op("ok", "status", client, number, done, tx=h, node=node,
                                  status="committed", height=k, index=0, code=200))  # fmt: skip
            number += 1
            t = done + 0.1
    ops.sort(key=lambda o: o.mono_ns)
    assert check_sequence(ops) == []
    return ops


def test_perf_series_latency_throughput_and_windows() -> None:
    """Latency runs from the first submit invoke to the first read that found the
    tx in a block; throughput counts first sightings per bin; windows keep their kind."""
    ops = [
        op("invoke", "submit", 0, 0, 0.0, tx=tx(1), node=0),
        op("ok", "submit", 0, 0, 0.1, tx=tx(1), node=0, status="accepted"),
        op("info", "nemesis", NEMESIS, 0, 0.2, fault="kill nodes=1", phase="start"),
        op("invoke", "status", 0, 1, 0.5, tx=tx(1), node=2),
        op("ok", "status", 0, 1, 0.6, tx=tx(1), node=2, status="pending"),
        op("invoke", "status", 0, 2, 1.0, tx=tx(1), node=2),
        op("ok", "status", 0, 2, 1.5, tx=tx(1), node=2, status="committed", height=1, index=0),
        op("invoke", "submit", 1, 0, 1.2, tx=tx(2), node=3),
        op("fail", "submit", 1, 0, 1.3, tx=tx(2), node=3, code=400, error="malformed"),
        op("info", "nemesis", NEMESIS, 0, 2.5, fault="kill nodes=1", phase="end"),
    ]
    ops.sort(key=lambda o: o.mono_ns)
    data = perf_series(ops)
    assert data.latency == [(0.0, 1.5)]
    assert data.failed == [1.2] and data.unknown == [] and data.lost == []
    assert data.throughput == [(0.0, 0), (1.0, 1), (2.0, 0)]
    assert data.spans == [(0.2, 2.5, "kill")]
    assert data.end_s == 2.5


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_render_writes_a_png_with_the_windows(tmp_path: Path) -> None:
    """A synthetic run with two fault windows renders to a non-empty PNG of the
    expected size; its series show the slower commits inside the first window."""
    ops = synthetic()
    data = perf_series(ops)
    inside = [lat for t, lat in data.latency if 5.0 <= t < 10.0]
    outside = [lat for t, lat in data.latency if t < 5.0]
    assert min(inside) > max(outside)
    assert len(data.lost) == 1 and data.failed and data.unknown
    out = render(ops, tmp_path / "out" / "perf.png", title="synthetic")
    assert out.stat().st_size > 10_000
    assert png_size(out) == (1210, 715)


def test_render_of_an_empty_history(tmp_path: Path) -> None:
    """An empty history (a run that failed at once) still gives a valid PNG, and
    explicit spans may be given instead of the history's."""
    out = render([], tmp_path / "empty.png", spans=[FaultSpan(0, 2 * S, "ring reach=1")])
    assert png_size(out) == (1210, 715)
