"""The load run itself: send the pre-signed transactions, follow the blocks, sample the nodes.

``LoadRun`` drives one run over one aiohttp session with a bounded connection
pool (open or closed loop, see node/bench/load.py), follows every node's
blocks to timestamp commits, samples RSS and CPU from ``/proc``, reports its
progress as ``Snapshot``s, and returns the raw ``RunStats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from node.bench import procs
from node.bench.progress import NullProgress, Progress, Snapshot
from node.bench.stats import NodeSample, RunStats
from node.bench.workload import LoadConfig, NodeTarget, SignedTx

_JSON = {"Content-Type": "application/json"}


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
