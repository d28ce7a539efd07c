"""A node's storage-fault state: writing, or stopped after a failed write and retrying.

Pure (time passed in as ``now_ms``, a monotonic clock in milliseconds); the IO
around it is ``node.engine.storage_recovery``. The states:

- *healthy*: ``error`` is None;
- *failed*: a write failed (``fail``); the node writes nothing, votes for
  nothing and commits nothing until a retry succeeds. Retries are due at
  ``retry_at_ms``: ``first_retry_ms`` after the failure, then after each failed
  retry (``retry_failed``) twice the previous wait, at most ``max_retry_ms``.
  ``reason`` is the ``/health`` line for it;
- back to *healthy* when a retry succeeds (``recovered``).

A failure during an episode (the retry's own write failed, or a second part
of the node hit the same disk) does not start a new one: only the first
failure of an episode is to be logged as an error (``fail`` says which), so a
disk that stays full for hours gives one error line, not one per retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RETRY_FIRST_MS: Final = 1_000
RETRY_MAX_MS: Final = 10_000
HEALTH_PREFIX: Final = "storage write failed"


def advice(path: str, *, disk_full: bool) -> str:
    """What the operator should do about a failed write to ``path``."""
    cure = (
        f"the disk holding {path} is full: free space on it (old logs, backups) or grow it"
        if disk_full
        else f"check the filesystem holding {path} (read-only, permissions, I/O errors in "
        "the kernel log)"
    )
    return (
        f"{cure}. Nothing was written partially and no unwritten vote was sent; the node "
        "retries by itself, then catches up from its peers: no restart is needed"
    )


@dataclass
class StorageFault:
    """The state of the module docstring; one per node."""

    first_retry_ms: int = RETRY_FIRST_MS
    max_retry_ms: int = RETRY_MAX_MS
    error: str | None = None  # the latest error of the episode; None: healthy
    disk_full: bool = False
    since_ms: int = 0  # when the episode began
    attempts: int = 0  # failed retries in this episode
    retry_at_ms: int = 0
    wait_ms: int = 0  # the wait before the retry due at retry_at_ms

    def __post_init__(self) -> None:
        if not 0 < self.first_retry_ms <= self.max_retry_ms:
            raise ValueError("need 0 < first_retry_ms <= max_retry_ms")

    @property
    def failed(self) -> bool:
        return self.error is not None

    def fail(self, error: str, *, disk_full: bool, now_ms: int) -> bool:
        """A write failed. True when this begins an episode (log it); during one, only
        the error is updated and the retry schedule is kept."""
        began = self.error is None
        self.error, self.disk_full = error, disk_full
        if began:
            self.since_ms = now_ms
            self.attempts = 0
            self.wait_ms = self.first_retry_ms
            self.retry_at_ms = now_ms + self.wait_ms
        return began

    def due(self, now_ms: int) -> bool:
        """Whether a retry is due (never when healthy)."""
        return self.failed and now_ms >= self.retry_at_ms

    def until_due_ms(self, now_ms: int) -> int:
        """Milliseconds until the next retry is due (0 when due or healthy)."""
        return max(0, self.retry_at_ms - now_ms) if self.failed else 0

    def retry_failed(self, error: str, *, disk_full: bool, now_ms: int) -> int:
        """A retry failed: the next one waits twice as long (at most ``max_retry_ms``);
        returns how many retries of this episode have failed."""
        if not self.failed:
            raise RuntimeError("retry_failed while healthy")
        self.error, self.disk_full = error, disk_full
        self.attempts += 1
        self.wait_ms = min(self.wait_ms * 2, self.max_retry_ms)
        self.retry_at_ms = now_ms + self.wait_ms
        return self.attempts

    def recovered(self, now_ms: int) -> int:
        """A retry succeeded: healthy again; returns how long the episode lasted (ms)."""
        if not self.failed:
            raise RuntimeError("recovered while healthy")
        lasted = now_ms - self.since_ms
        self.error, self.disk_full = None, False
        self.attempts = self.retry_at_ms = self.wait_ms = 0
        return lasted

    def reason(self, now_ms: int) -> str | None:
        """The ``/health`` reason while failed (it begins with ``HEALTH_PREFIX``), else None."""
        if self.error is None:
            return None
        kind = "disk full" if self.disk_full else "I/O error"
        return (
            f"{HEALTH_PREFIX} ({kind}) {(now_ms - self.since_ms) // 1000} s ago: not voting "
            f"or committing, retry {self.attempts + 1} in "
            f"{-(-self.until_due_ms(now_ms) // 1000)} s; {self.error}"
        )
