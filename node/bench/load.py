"""``hygeia bench``: drive a running network with pre-signed transactions.

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
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import aiohttp
import nacl.signing

from node.bench import procs
from node.core.keys import load_key
from node.core.tx import build_tx
from node.setup.testnet import TestnetError, read_testnet

__all__ = [
    "CLOSED_CEILING_TPS",
    "LoadConfig",
    "LoadRun",
    "NodeSample",
    "NodeTarget",
    "NullProgress",
    "Progress",
    "RunStats",
    "SignedTx",
    "Snapshot",
    "anchor_digest",
    "build_report",
    "latency_summary",
    "load_testnet",
    "per_second",
    "percentile",
    "presign",
    "run_load",
    "sliding_min_rate",
]

Mode = Literal["open", "closed"]
TX_TYPE: Final = "data.anchor"
# closed loop: how many transactions to pre-sign per second of run when not told
CLOSED_CEILING_TPS: Final = 2000
_JSON = {"Content-Type": "application/json"}
_PRESIGN_CHUNK: Final = 5000


# ------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class NodeTarget:
    """One node to submit to: its client API, and what is needed to watch it."""

    name: str
    api: str
    admin: str | None = None
    admin_token: str | None = None
    home: str | None = None


@dataclass(frozen=True)
class LoadConfig:
    mode: Mode
    rate: float = 500.0
    concurrency: int = 500
    duration_s: float = 60.0
    warmup_s: float = 5.0
    drain_s: float = 15.0
    poll_interval_s: float = 0.02
    connections_per_node: int = 32
    max_in_flight: int = 4096
    request_timeout_s: float = 30.0
    txs: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("open", "closed"):
            raise ValueError(f"mode must be 'open' or 'closed', got {self.mode!r}")
        if self.mode == "open" and not self.rate > 0:
            raise ValueError("open loop: rate must be > 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not self.duration_s > 0 or self.warmup_s < 0 or self.drain_s < 0:
            raise ValueError("duration must be > 0, warm-up and drain >= 0")

    def planned_txs(self) -> int:
        """How many transactions to pre-sign (``txs`` when given)."""
        if self.txs is not None:
            return self.txs
        run_s = self.warmup_s + self.duration_s
        if self.mode == "open":
            return math.ceil(self.rate * run_s) + 16
        return math.ceil(CLOSED_CEILING_TPS * run_s) + self.concurrency


def load_testnet(directory: str | os.PathLike[str]) -> tuple[str, list[NodeTarget], list[Path]]:
    """``(chain_id, targets, member key files)`` of a ``hygeia testnet init`` directory."""
    meta = read_testnet(Path(directory), need=("name", "api", "home"))
    if not isinstance(meta.get("chain_id"), str):
        raise TestnetError(f'{directory}: testnet.json has no string "chain_id"')
    targets: list[NodeTarget] = []
    keys: list[Path] = []
    for n in meta["nodes"]:
        token: str | None = None
        token_file = n.get("admin_token_file")
        if token_file:
            with contextlib.suppress(OSError):
                token = Path(token_file).read_text(encoding="utf-8").strip()
        targets.append(NodeTarget(n["name"], n["api"], n.get("admin"), token, n.get("home")))
        key = Path(n["home"]) / "member_key.json"
        if key.exists():
            keys.append(key)
    return str(meta["chain_id"]), targets, keys


# ------------------------------------------------------------------ pre-signing
@dataclass(frozen=True, slots=True)
class SignedTx:
    hash: str
    wire: bytes


def anchor_digest(salt: bytes, index: int) -> str:
    return hashlib.sha256(salt + index.to_bytes(8, "big")).hexdigest()


def _sign_range(
    seeds: Sequence[bytes], chain_id: str, salt: bytes, start: int, stop: int
) -> list[tuple[str, bytes]]:
    keys = [nacl.signing.SigningKey(s) for s in seeds]
    out: list[tuple[str, bytes]] = []
    for i in range(start, stop):
        body = {"digest": anchor_digest(salt, i)}
        tx = build_tx(chain_id, TX_TYPE, body, keys[i % len(keys)], i)
        out.append((tx.hash, tx.wire))
    return out


def presign(
    seeds: Sequence[bytes],
    chain_id: str,
    count: int,
    *,
    salt: bytes | None = None,
    workers: int | None = None,
) -> list[SignedTx]:
    """``count`` signed anchors of distinct digests; tx ``i`` is signed by ``seeds[i % K]``.

    Large batches are signed in ``workers`` processes (default: one per CPU),
    started with ``spawn``: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if not seeds:
        raise ValueError("presign: no signing key")
    if count < 0:
        raise ValueError("presign: count must be >= 0")
    salt = os.urandom(16) if salt is None else salt
    seeds = list(seeds)
    ranges = [(s, min(s + _PRESIGN_CHUNK, count)) for s in range(0, count, _PRESIGN_CHUNK)]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(ranges) <= 1:
        parts = [_sign_range(seeds, chain_id, salt, a, b) for a, b in ranges]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(ranges)), mp_context=ctx) as pool:
            futures = [pool.submit(_sign_range, seeds, chain_id, salt, a, b) for a, b in ranges]
            parts = [f.result() for f in futures]
    return [SignedTx(h, w) for part in parts for h, w in part]


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


# ------------------------------------------------------------------ progress
@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    total_s: float
    phase: str  # "warm-up" | "measure" | "drain"
    submitted: int
    accepted: int
    committed: int
    errors: int
    rate_1s: float  # commits seen in the last second


class Progress(Protocol):
    def update(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ the run
def _error_code(status: int, body: bytes) -> str:
    try:
        code = json.loads(body)["error"]["code"]
        return f"{status} {code}"
    except (ValueError, KeyError, TypeError):
        return f"{status}"


class LoadRun:
    """One run against ``targets`` with the pre-signed ``txs``; ``await run()``."""

    def __init__(
        self,
        cfg: LoadConfig,
        targets: Sequence[NodeTarget],
        txs: Sequence[SignedTx],
        *,
        progress: Progress | None = None,
    ) -> None:
        if not targets:
            raise ValueError("no node to submit to")
        self.cfg = cfg
        self.targets = list(targets)
        self.txs = txs
        self.progress = progress or NullProgress()
        n = len(txs)
        self.submit_t = array("d", [-1.0]) * n
        self.commit_t = array("d", [-1.0]) * n
        self.accepted = bytearray(n)
        self.pending: list[dict[str, int]] = [{} for _ in self.targets]
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.errors: Counter[str] = Counter()
        self.errors_outside: Counter[str] = Counter()
        self.next_index = 0
        self.exhausted = False
        self.max_lag = 0.0
        self.submitted_total = 0
        self.accepted_total = 0
        self.committed_total = 0
        self.error_total = 0
        self.samples = [NodeSample(t.name, t.api) for t in self.targets]
        self._t0 = 0.0
        self._stop_follow = False
        self._commit_log: list[float] = []  # commit times of everything, for the 1 s rate
        self._session: aiohttp.ClientSession | None = None

    @property
    def window_start(self) -> float:
        return self.cfg.warmup_s

    @property
    def window_end(self) -> float:
        return self.cfg.warmup_s + self.cfg.duration_s

    def now(self) -> float:
        return time.monotonic() - self._t0

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    # --------------------------------------------------------- submit
    async def _post(self, idx: int) -> str | None:
        """Send tx ``idx`` to its node; None when accepted (202), else the error code."""
        k = idx % len(self.targets)
        tx = self.txs[idx]
        self.pending[k][tx.hash] = idx
        sent = self.now()
        self.submit_t[idx] = sent
        self.submitted_total += 1
        code: str | None
        try:
            async with self.session.post(
                self.targets[k].api + "/v1/txs", data=tx.wire, headers=_JSON
            ) as resp:
                body = await resp.read()
                code = None if resp.status == 202 else _error_code(resp.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            code = f"connection {type(exc).__name__}"
        if code is None:
            self.accepted[idx] = 1
            self.accepted_total += 1
            return None
        self.pending[k].pop(tx.hash, None)
        self.error_total += 1
        in_window = self.window_start <= sent < self.window_end
        (self.errors if in_window else self.errors_outside)[code] += 1
        return code

    def _take_index(self) -> int | None:
        if self.next_index >= len(self.txs):
            self.exhausted = True
            return None
        idx = self.next_index
        self.next_index += 1
        return idx

    async def _open_loop(self) -> None:
        rate = self.cfg.rate
        tasks: set[asyncio.Task[str | None]] = set()
        i = 0
        while True:
            now = self.now()
            if now >= self.window_end:
                break
            due = int(now * rate) + 1
            while i < due:
                if i >= len(self.txs):
                    self.exhausted = True
                    break
                self.max_lag = max(self.max_lag, now - i / rate)
                if len(tasks) >= self.cfg.max_in_flight:
                    self.submit_t[i] = now
                    self.error_total += 1
                    in_window = self.window_start <= now < self.window_end
                    (self.errors if in_window else self.errors_outside)["client-overload"] += 1
                else:
                    task = asyncio.create_task(self._post(i))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
            if self.exhausted:
                break
            await asyncio.sleep(max(0.0005, i / rate - self.now()))
        self.next_index = i
        if tasks:
            await asyncio.gather(*tasks)

    async def _closed_worker(self) -> None:
        loop = asyncio.get_running_loop()
        while self.now() < self.window_end:
            idx = self._take_index()
            if idx is None:
                return
            fut: asyncio.Future[None] = loop.create_future()
            self.waiters[idx] = fut
            code = await self._post(idx)
            if code is not None:
                self.waiters.pop(idx, None)
                # the node pushes back (mempool full, quota) or is unreachable: wait a little
                await asyncio.sleep(0.05)
                continue
            left = self.window_end - self.now()
            if left > 0 and not fut.done():
                await asyncio.wait([fut], timeout=left)
            self.waiters.pop(idx, None)

    # --------------------------------------------------------- commits
    def _on_commit(self, idx: int, now: float) -> None:
        self.commit_t[idx] = now
        self.committed_total += 1
        self._commit_log.append(now)
        fut = self.waiters.pop(idx, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _get_json(self, url: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with self.session.get(url, headers=headers) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return json.loads(await resp.read())

    async def _follow(self, k: int) -> None:
        target = self.targets[k]
        pending = self.pending[k]
        sample = self.samples[k]
        info = await self._get_json(target.api + "/v1/info")
        next_h = int(info["height"]) + 1
        poll = self.cfg.poll_interval_s
        while not self._stop_follow:
            asked = self.now()
            try:
                block = await self._get_json(f"{target.api}/v1/blocks/{next_h}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.errors_outside[f"follow {type(exc).__name__}"] += 1
                await asyncio.sleep(poll)
                continue
            if block is None:
                await asyncio.sleep(poll)
                continue
            now = self.now()
            for h in block["tx_hashes"]:
                idx = pending.pop(h, None)
                if idx is not None:
                    self._on_commit(idx, now)
            sample.blocks_followed += 1
            sample.block_fetch_s += now - asked
            next_h += 1

    # --------------------------------------------------------- node state
    async def _node_status(self, k: int) -> dict[str, Any] | None:
        t = self.targets[k]
        if not t.admin or not t.admin_token:
            return None
        try:
            found: dict[str, Any] | None = await self._get_json(t.admin + "/status", t.admin_token)
            return found
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def _sample_rss(self, pids: list[int | None]) -> None:
        while True:
            for sample, pid in zip(self.samples, pids, strict=True):
                rss = procs.rss_mb(pid)
                if rss is not None:
                    sample.max_sampled_rss_mb = max(sample.max_sampled_rss_mb or 0.0, rss)
            await asyncio.sleep(1.0)

    async def _ticker(self) -> None:
        total = self.window_end + self.cfg.drain_s
        while True:
            now = self.now()
            phase = (
                "warm-up"
                if now < self.window_start
                else "measure"
                if now < self.window_end
                else "drain"
            )
            recent = sum(1 for t in self._commit_log[-5000:] if t >= now - 1.0)
            self.progress.update(
                Snapshot(
                    now,
                    total,
                    phase,
                    self.submitted_total,
                    self.accepted_total,
                    self.committed_total,
                    self.error_total,
                    float(recent),
                )
            )
            await asyncio.sleep(0.5)

    def _window_outstanding(self) -> int:
        start = self.window_start
        return sum(
            1
            for i in range(self.next_index)
            if self.accepted[i] and self.submit_t[i] >= start and self.commit_t[i] < 0
        )

    # --------------------------------------------------------- main
    async def run(self) -> RunStats:
        cfg = self.cfg
        stats = RunStats(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            load_average_start=procs.load_average(),
        )
        pids = [procs.find_node_pid(t.home) if t.home else None for t in self.targets]
        for sample, pid in zip(self.samples, pids, strict=True):
            sample.pid = pid
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=cfg.connections_per_node)
        timeout = aiohttp.ClientTimeout(total=cfg.request_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._session = session
            for k, st in enumerate(await asyncio.gather(*map(self._node_status, range(len(pids))))):
                if st is not None:
                    self.samples[k].height_start = st.get("height")
                    self.samples[k].view_start = st.get("view")
            self._t0 = time.monotonic()
            followers = [asyncio.create_task(self._follow(k)) for k in range(len(self.targets))]
            helpers = [
                asyncio.create_task(self._sample_rss(pids)),
                asyncio.create_task(self._ticker()),
            ]
            await asyncio.sleep(0)
            if cfg.mode == "open":
                driver = asyncio.create_task(self._open_loop())
            else:
                workers = [
                    asyncio.create_task(self._closed_worker()) for _ in range(cfg.concurrency)
                ]
                driver = asyncio.create_task(self._gather(workers))
            # CPU use over the measured window
            await asyncio.sleep(max(0.0, self.window_start - self.now()))
            cpu0 = [procs.cpu_seconds(p) for p in pids]
            me0 = procs.cpu_seconds(os.getpid())
            host0 = procs.machine_cpu()
            w0 = self.now()
            await asyncio.sleep(max(0.0, self.window_end - self.now()))
            cpu1 = [procs.cpu_seconds(p) for p in pids]
            me1 = procs.cpu_seconds(os.getpid())
            stats.host_busy_percent = procs.busy_percent(host0, procs.machine_cpu())
            span = self.now() - w0
            await driver
            # drain: let the window's transactions commit
            deadline = self.window_end + cfg.drain_s
            while self.now() < deadline and self._window_outstanding():
                await asyncio.sleep(0.1)
            self._stop_follow = True
            for task in helpers:
                task.cancel()
            done, _ = await asyncio.wait(followers, timeout=5)
            for task in followers:
                task.cancel()
            for task in [*followers, *helpers]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in done:  # a follower that failed (node unreachable at the start)
                if not task.cancelled() and task.exception() is not None:
                    self.errors_outside[f"follow {type(task.exception()).__name__}"] += 1
            statuses = await asyncio.gather(*map(self._node_status, range(len(pids))))
        for k, st in enumerate(statuses):
            s = self.samples[k]
            if st is not None:
                s.height_end = st.get("height")
                s.view_end = st.get("view")
                s.mempool_end = st.get("mempool_size")
            s.peak_rss_mb = procs.peak_rss_mb(pids[k])
            c0, c1 = cpu0[k], cpu1[k]
            if c0 is not None and c1 is not None and span > 0:
                s.cpu_percent = round(100 * (c1 - c0) / span, 1)
        if me0 is not None and me1 is not None and span > 0:
            stats.client_cpu_percent = round(100 * (me1 - me0) / span, 1)
        stats.client_peak_rss_mb = procs.peak_rss_mb(os.getpid())
        self._fill(stats)
        return stats

    @staticmethod
    async def _gather(tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks)

    def _fill(self, stats: RunStats) -> None:
        start, end = self.window_start, self.window_end
        for i in range(self.next_index):
            sent = self.submit_t[i]
            if sent < 0:
                continue
            committed = self.commit_t[i]
            if committed >= 0:
                stats.commit_times.append(committed)
            if not start <= sent < end:
                continue
            stats.submitted += 1
            if self.accepted[i]:
                stats.accepted += 1
                if committed >= 0:
                    stats.latencies_ms.append((committed - sent) * 1000)
        # dropped by the client (open loop overload) count as submitted, not accepted
        stats.errors = dict(self.errors)
        stats.errors_outside_window = dict(self.errors_outside)
        stats.exhausted = self.exhausted
        stats.presigned = len(self.txs)
        if self.cfg.mode == "open":
            stats.max_send_lag_ms = round(self.max_lag * 1000, 1)
        stats.nodes = self.samples


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
