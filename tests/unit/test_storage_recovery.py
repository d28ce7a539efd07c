"""Retrying storage after a failed write (``node.engine.storage_recovery``), with a fake
store, probe and resume on a real event loop and executor; retries every few ms.

- one error line per episode, the ``/health`` reason while it lasts;
- while the probe says the disk is still full, the database is not touched (no
  reopen), and each failed retry waits longer;
- a retry that works reopens (with the storage worker parked), resumes, logs
  ``storage_recovered``; a resume that fails, or a failure reported while
  resuming, is a failed retry;
- ``run_exclusive`` runs between the storage work queued before and after it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from node.engine.storage_fault import StorageFault
from node.engine.storage_recovery import StorageRecovery, run_exclusive
from storage.errors import StorageWriteError
from tests.support.waiting import wait_until_async

DIR = Path("/var/lib/hygeia/data")
FULL = StorageWriteError(DIR, "IO error: /var/lib/hygeia/data/000014.log: No space left on device")
WAIT = 5.0


class FakeStore:
    """Counts reopens; fails the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.reopens = 0
        self.threads: list[int] = []

    def reopen(self) -> None:
        self.reopens += 1
        self.threads.append(threading.get_ident())
        if self.reopens <= self.failures:
            raise StorageWriteError(DIR, "No space left on device")


class Disk:
    """The probe: refuses while ``full``."""

    def __init__(self, full: bool) -> None:
        self.full = full
        self.probes = 0

    def probe(self, directory: Path) -> None:
        assert directory == DIR
        self.probes += 1
        if self.full:
            raise StorageWriteError(directory, "No space left on device")


@asynccontextmanager
async def recovery(
    store: FakeStore, disk: Disk, resume: Callable[[], Any] | None = None
) -> AsyncIterator[tuple[StorageRecovery, list[str]]]:
    """A ``StorageRecovery`` retrying after 5 ms, then at most every 20 ms; yields it
    and the list of resumes; stopped on leaving."""
    resumed: list[str] = []

    async def default_resume() -> None:
        resumed.append("resumed")

    with ThreadPoolExecutor(1) as executor:
        rec = StorageRecovery(
            store,
            DIR,
            executor,
            resume or default_resume,
            fault=StorageFault(first_retry_ms=5, max_retry_ms=20),
            probe=disk.probe,
        )
        try:
            yield rec, resumed
        finally:
            await rec.stop()


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_one_error_line_a_reason_and_no_reopen_while_the_disk_is_full() -> None:
    store, disk = FakeStore(), Disk(full=True)
    with capture_logs() as logs:
        async with recovery(store, disk) as (rec, resumed):
            assert rec.reason() is None and not rec.failed
            rec.report(FULL)
            rec.report(StorageWriteError(DIR, "writes are refused since ...", disk_full=True))
            assert rec.failed
            reason = rec.reason()
            assert reason is not None and reason.startswith("storage write failed (disk full)")
            await wait_until_async("three failed retries", lambda: disk.probes >= 3, timeout=WAIT)
            assert store.reopens == 0 and resumed == []  # the database is left alone
            assert rec.failed and rec.fault.attempts >= 3
    (line,) = events(logs, "storage_write_failed")
    assert line["log_level"] == "error"
    assert line["path"] == str(DIR) and line["disk_full"] is True
    assert "No space left on device" in line["error"]
    assert "free space" in line["action"] and "no restart is needed" in line["action"]
    warned = [e["attempts"] for e in events(logs, "storage_retry_failed")]
    assert warned[:2] == [1, 2] and all(n & (n - 1) == 0 for n in warned)  # 1, 2, 4, 8...


async def test_room_again_reopens_with_the_worker_parked_and_resumes() -> None:
    store, disk = FakeStore(), Disk(full=True)
    with capture_logs() as logs:
        async with recovery(store, disk) as (rec, resumed):
            rec.report(FULL)
            await wait_until_async("a failed retry", lambda: disk.probes >= 1, timeout=WAIT)
            disk.full = False
            await asyncio.wait_for(rec.wait_writing(), WAIT)
            assert store.reopens == 1 and resumed == ["resumed"]
            assert store.threads == [threading.get_ident()]  # on the loop's thread
            assert not rec.failed and rec.reason() is None
            # a later failure is a new episode, logged again
            rec.report(FULL)
            await asyncio.wait_for(rec.wait_writing(), WAIT)
    assert len(events(logs, "storage_write_failed")) == 2
    assert len(events(logs, "storage_recovered")) == 2
    assert rec.episodes == 2


async def test_a_reopen_or_resume_that_fails_is_a_failed_retry() -> None:
    store, disk = FakeStore(failures=2), Disk(full=False)
    resumes: list[int] = []

    async def resume() -> None:
        resumes.append(store.reopens)
        if len(resumes) == 1:
            raise StorageWriteError(DIR, "No space left on device")  # the new driver's write

    async with recovery(store, disk, resume) as (rec, _):
        rec.report(FULL)
        await asyncio.wait_for(rec.wait_writing(), WAIT)
    assert store.reopens == 4  # two refused, one whose resume failed, one that worked
    assert resumes == [3, 4]
    assert rec.fault.attempts == 0 and not rec.failed


async def test_a_failure_reported_while_resuming_fails_the_retry() -> None:
    """The fresh driver meets the full disk again as it starts: not recovered."""
    store, disk = FakeStore(), Disk(full=False)
    rec_box: list[StorageRecovery] = []
    calls = 0

    async def resume() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            rec_box[0].report(FULL)

    with capture_logs() as logs:
        async with recovery(store, disk, resume) as (rec, _):
            rec_box.append(rec)
            rec.report(FULL)
            await asyncio.wait_for(rec.wait_writing(), WAIT)
    assert calls == 2 and store.reopens == 2
    assert len(events(logs, "storage_write_failed")) == 1  # still the same episode
    assert len(events(logs, "storage_recovered")) == 1


async def test_stop_ends_the_retries() -> None:
    store, disk = FakeStore(), Disk(full=True)
    async with recovery(store, disk) as (rec, _):
        rec.report(FULL)
        await wait_until_async("a failed retry", lambda: disk.probes >= 1, timeout=WAIT)
        await rec.stop()
        assert "storage-recovery" not in {t.get_name() for t in asyncio.all_tasks()}
        assert rec.failed  # stopped, not recovered


async def test_run_exclusive_runs_between_the_storage_work_before_and_after() -> None:
    order: list[str] = []
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as executor:

        def job(name: str) -> None:
            time.sleep(0.02)
            order.append(name)

        before = loop.run_in_executor(executor, job, "before")
        exclusive = asyncio.ensure_future(run_exclusive(executor, lambda: order.append("fn")))
        await asyncio.sleep(0)  # run_exclusive has queued its park
        after = loop.run_in_executor(executor, job, "after")
        await asyncio.gather(before, exclusive, after)
    assert order == ["before", "fn", "after"]


async def test_run_exclusive_releases_the_worker_when_fn_raises() -> None:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as executor:

        def boom() -> None:
            raise RuntimeError("reopen failed")

        with pytest.raises(RuntimeError, match="reopen failed"):
            await run_exclusive(executor, boom)
        assert await loop.run_in_executor(executor, lambda: "free") == "free"
