"""Retrying storage after a failed write, and resuming the node once it writes again.

When a write to the data directory fails (a full disk, a filesystem that
refuses), the part of the node that met it stops writing and reports it here
(``report``): the consensus driver suspends itself (``node.engine.driver``:
no vote that was not persisted leaves), a non-validator's block loop pauses.
This module then:

1. logs ONE error line for the episode, event ``storage_write_failed``, with
   the path, the error and what the operator should do
   (``node.engine.storage_fault.advice``);
2. makes ``/health`` answer 503 with ``reason()`` (``storage write failed ...``);
3. retries on the schedule of ``node.engine.storage_fault.StorageFault``
   (1 s, then doubling up to 10 s), each retry: probe that the filesystem takes
   as much as reopening the database needs (``storage.room``: a probe file
   written, fsynced, deleted; the database is not touched while the disk is
   still full), reopen the database (``ChainStore.reopen``: the only way to
   write again after a failed write, see ``storage.db``), then ``resume``,
   the daemon's callback that reloads the chain tip from the reopened
   database and starts a fresh replica and driver from the persisted records,
   as a restart would. Block sync then fetches what the others committed
   meanwhile. A failed retry logs a warning at the 1st, 2nd, 4th, 8th... one;
   success logs ``storage_recovered``.

The reopen runs on the event loop's thread while the storage executor's one
worker is parked (``run_exclusive``): the handlers on the loop and the storage
work in that worker are the database's only users, so nothing reads it while
it is closed and opened again. The storage executor must have exactly one
worker (the daemon's has).

What the node does meanwhile, as a crash would leave it but without the
crash: the chain it stored is intact and still served, nothing new is voted
for or committed, peers' consensus messages and synced blocks are dropped,
client transactions are still admitted and gossiped (and handed to the new
replica on resume).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol, TypeVar

import structlog

from node.engine.storage_fault import StorageFault, advice
from storage.errors import StorageError, StorageWriteError
from storage.room import probe_room, reopen_room

log = structlog.get_logger("hygeia.storage")
T = TypeVar("T")


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def probe_for_reopen(directory: Path) -> None:
    """``StorageWriteError`` unless ``directory`` takes what reopening its database needs."""
    probe_room(directory, reopen_room(directory))


class Reopenable(Protocol):
    """What is reopened (``storage.chain.ChainStore``)."""

    def reopen(self) -> None: ...


async def run_exclusive(executor: Executor, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the event loop's thread while ``executor``'s (one) worker is parked:
    work queued on the executor before waits for ``fn``, work after it too."""
    loop = asyncio.get_running_loop()
    parked: asyncio.Future[None] = loop.create_future()
    release = threading.Event()

    def arrived() -> None:
        if not parked.done():
            parked.set_result(None)

    def park() -> None:
        loop.call_soon_threadsafe(arrived)
        release.wait()

    worker = loop.run_in_executor(executor, park)
    try:
        await parked
        return fn()
    finally:
        release.set()
        await asyncio.shield(worker)


class StorageRecovery:
    """The retry loop of the module docstring, for one node's store."""

    def __init__(
        self,
        store: Reopenable,
        directory: Path,
        executor: Executor,
        resume: Callable[[], Awaitable[None]],
        *,
        clock: Callable[[], int] = monotonic_ms,
        fault: StorageFault | None = None,
        probe: Callable[[Path], None] = probe_for_reopen,
    ) -> None:
        self._store = store
        self._directory = directory
        self._executor = executor
        self._resume = resume
        self._clock = clock
        self._probe = probe
        self.fault = fault if fault is not None else StorageFault()
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Event()
        self._writing.set()
        self._during_retry: StorageWriteError | None = None
        self.episodes = 0

    @property
    def failed(self) -> bool:
        return self.fault.failed

    def reason(self) -> str | None:
        """The ``/health`` reason while writes are stopped, else None."""
        return self.fault.reason(self._clock())

    def report(self, exc: StorageWriteError) -> None:
        """A write failed: stop-the-world is the caller's part; this logs it (once per
        episode), and retries until the database writes again."""
        self._during_retry = exc
        self._writing.clear()
        if not self.fault.fail(str(exc), disk_full=exc.disk_full, now_ms=self._clock()):
            return
        self.episodes += 1
        log.error(
            "storage_write_failed",
            path=str(exc.path),
            error=exc.detail,
            disk_full=exc.disk_full,
            retry_in_s=self.fault.until_due_ms(self._clock()) / 1000,
            action=advice(str(exc.path), disk_full=exc.disk_full),
        )
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry_loop(), name="storage-recovery")

    async def wait_writing(self) -> None:
        """Until no write failure is outstanding."""
        await self._writing.wait()

    async def stop(self) -> None:
        """Stop retrying (the node is stopping); all is done on return."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _retry_loop(self) -> None:
        fault = self.fault
        while fault.failed:
            await asyncio.sleep(fault.until_due_ms(self._clock()) / 1000)
            if not fault.due(self._clock()):
                continue
            try:
                await self._retry()
            except (StorageError, OSError) as exc:
                disk_full = isinstance(exc, StorageWriteError) and exc.disk_full
                attempts = fault.retry_failed(str(exc), disk_full=disk_full, now_ms=self._clock())
                if attempts & (attempts - 1) == 0:  # the 1st, 2nd, 4th, 8th...
                    log.warning(
                        "storage_retry_failed",
                        attempts=attempts,
                        error=str(exc),
                        disk_full=disk_full,
                        retry_in_s=fault.until_due_ms(self._clock()) / 1000,
                    )
                continue
            retries = fault.attempts + 1
            lasted = fault.recovered(self._clock())
            self._writing.set()
            log.info(
                "storage_recovered",
                path=str(self._directory),
                after_s=lasted / 1000,
                retries=retries,
            )

    async def _retry(self) -> None:
        """Probe, reopen, resume; raises what failed. A write failure reported while
        resuming (the new driver's first write) fails the retry too."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._probe, self._directory)
        await run_exclusive(self._executor, self._store.reopen)
        self._during_retry = None
        await self._resume()
        if self._during_retry is not None:
            raise self._during_retry
