"""``hygeia bench``: drive a running network with pre-signed transactions (the method).

``run_load`` pre-signs (node/bench/workload.py), runs (node/bench/runner.py)
and reports (node/bench/stats.py); progress goes to node/bench/progress.py.

All transactions are built and signed before the clock starts (in worker
processes: signing is not part of the measurement). Transaction ``i`` is a
``data.anchor`` of a fresh digest (SHA-256 of a per-run salt and ``i``),
signed by member key ``i mod K`` and submitted to node ``i mod N``
(round-robin), over one aiohttp session with a bounded connection pool.

Two ways to offer load:

* **open loop** (``mode="open"``): transaction ``i`` is sent at ``i / rate``
  seconds whatever happens to earlier ones; the dispatcher never waits for
  answers (at most ``max_in_flight`` POSTs outstanding: beyond that a send
  is counted as ``client-overload`` and skipped);
* **closed loop** (``mode="closed"``): ``concurrency`` workers each submit a
  transaction and wait until it is *committed* before sending the next, so
  exactly that many transactions are in the system: the maximum sustained
  throughput at that depth.

Commit detection follows blocks, not transactions: one follower per node
fetches ``GET /v1/blocks/{h}`` for each new height (a 404 means "not yet":
poll again after ``poll_interval_s``) and timestamps every submitted hash the
block lists *on the node that received it*. A transaction's commit latency is
from just before its POST to the moment its receiving node's follower saw it
in a committed block, so it includes up to one poll interval plus one block
fetch of observation delay.

Timeline (seconds from the first send): warm-up ``[0, W)``, measured window
``[W, W+D)``, then submission stops and a drain of at most ``drain_s`` waits
for the window's transactions to commit. ``committed_tps`` counts commit
events inside the window (whenever the transaction was sent); latencies and
the submitted/accepted/committed counts are over transactions sent inside it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from node.bench import procs
from node.bench.progress import NullProgress, Progress
from node.bench.runner import LoadRun
from node.bench.stats import build_report
from node.bench.workload import LoadConfig, NodeTarget, presign
from node.core.keys import load_key

__all__ = ["run_load"]


def run_load(
    cfg: LoadConfig,
    targets: Sequence[NodeTarget],
    key_files: Sequence[str | os.PathLike[str]],
    chain_id: str,
    *,
    progress: Progress | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Pre-sign, run, and return the report (``log``: a ``print``-like callable)."""
    say = log or (lambda *_: None)
    seeds = [bytes(load_key(path, on_warning=lambda _m: None)) for path in key_files]
    count = cfg.planned_txs()
    say(f"pre-signing {count} transactions with {len(seeds)} key(s) ...")
    started = time.perf_counter()
    txs = presign(seeds, chain_id, count)
    presign_s = time.perf_counter() - started
    say(f"signed in {presign_s:.1f} s; {cfg.mode} loop for {cfg.warmup_s + cfg.duration_s:g} s")
    run = LoadRun(cfg, targets, txs, progress=progress)
    try:
        stats = asyncio.run(run.run())
    finally:
        (progress or NullProgress()).close()
    stats.presign_s = presign_s
    return build_report(cfg, stats, signers=len(seeds), machine=procs.machine_info())
