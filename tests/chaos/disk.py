"""Disk faults: a small tmpfs under a node's data directory, filled and freed on demand.

``SmallDisk`` mounts a tmpfs of a given size at a directory (``mount -t tmpfs -o
size=N``), so whatever a process writes there runs out of room after N bytes,
as on a real full disk (``ENOSPC``), without touching the machine's own
disks. ``fill()`` writes a filler file until the filesystem refuses one more
byte and returns how many it wrote; ``free()`` deletes the filler, and the
space is back at once. ``unmount()`` (also on leaving the ``with`` block)
unmounts it; a mount still in use (a node process holding its database open)
is detached lazily (``umount -l``): the process keeps its files until it
exits, and the directory is free at once.

Why tmpfs: its size limit is exact and immediate, it needs no image file or
loop device, and it is gone without a trace when unmounted. Note that even a
"full" tmpfs takes a few more bytes into files whose last page is partly used
(a LevelDB log being appended to), so a writer may get one or two small
writes through after ``fill()`` before it sees ``ENOSPC``.

Mounting needs root (or ``CAP_SYS_ADMIN``): ``mount_denied()`` says why it is
not permitted here (a reason to skip a test), or ``None``. ``unshare -rm`` would
allow it without root, but only inside a new mount namespace, which the node
processes of a ``TestNetwork`` would not see: it is not tried.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["DiskError", "SmallDisk", "mount_denied"]

FILLER_PREFIX = ".filler-"
_CHUNK = 1 << 20  # the first write size of fill(); halved on ENOSPC down to one byte
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskError(OSError):
    """A mount or unmount failed (the message holds the command's own words)."""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def mount_denied() -> str | None:
    """Why a tmpfs cannot be mounted here (a reason to skip), or ``None`` if it can:
    a 64 KiB tmpfs is mounted in a temporary directory and unmounted again."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount commands on this machine"
    where = Path(tempfile.mkdtemp(prefix="hygeia-mount-probe-"))
    try:
        done = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where))
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            return f"mounting a tmpfs is not permitted here (needs root): {why}"
        _run("umount", str(where))
        return None
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


class SmallDisk:
    """A tmpfs of a fixed size at one directory; use as a context manager (unmounts).

    ``mount(path, size_bytes)`` mounts it (``path`` is made if missing and must
    be empty); ``fill()``, ``free()``, ``free_bytes()`` work on the mounted
    filesystem; ``unmount()`` unmounts it (idempotent)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.size_bytes = 0
        self._made_dir = False
        self._fillers: list[Path] = []

    # ------------------------------------------------------------ lifecycle
    def mount(self, path: Path | str, size_bytes: int) -> Path:
        """Mount a tmpfs of ``size_bytes`` (rounded up to whole pages) at ``path``;
        returns the path. ``DiskError`` if the mount is refused (e.g. not root)."""
        if self.path is not None:
            raise DiskError(f"already mounted at {self.path}")
        if size_bytes <= 0:
            raise ValueError("size_bytes must be positive")
        where = Path(path).absolute()
        self._made_dir = not where.exists()
        where.mkdir(parents=True, exist_ok=True)
        if any(where.iterdir()):
            raise DiskError(f"{where} is not empty: a mount would hide what it holds")
        done = _run(
            "mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(where)
        )
        if done.returncode != 0:
            if self._made_dir:
                with contextlib.suppress(OSError):
                    where.rmdir()
            raise DiskError(f"mount tmpfs at {where}: {(done.stderr or done.stdout).strip()}")
        self.path, self.size_bytes = where, size_bytes
        return where

    def unmount(self) -> None:
        """Unmount (lazily when busy: the holders keep their files until they close
        them); remove the directory if ``mount`` made it. Idempotent."""
        if self.path is None:
            return
        where, self.path = self.path, None
        self._fillers.clear()
        if _run("umount", str(where)).returncode != 0:
            done = _run("umount", "-l", str(where))
            if done.returncode != 0:
                raise DiskError(f"umount {where}: {(done.stderr or done.stdout).strip()}")
        if self._made_dir:
            with contextlib.suppress(OSError):
                where.rmdir()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unmount()

    # --------------------------------------------------------------- faults
    def _mounted(self) -> Path:
        if self.path is None:
            raise DiskError("no tmpfs is mounted (call mount first)")
        return self.path

    def fill(self) -> int:
        """Write a new filler file until the filesystem refuses even one more byte;
        returns the bytes written (0 if it was full already)."""
        where = self._mounted()
        filler = where / f"{FILLER_PREFIX}{len(self._fillers)}"
        self._fillers.append(filler)
        written = 0
        chunk = _CHUNK
        block = memoryview(b"\xa5" * _CHUNK)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while chunk > 0:
                try:
                    written += os.write(fd, block[:chunk])
                except OSError as exc:
                    if exc.errno not in _FULL_ERRNOS:
                        raise
                    chunk //= 2
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        return written

    def free(self) -> int:
        """Delete every filler file; returns the bytes they held."""
        freed = 0
        for filler in self._fillers:
            with contextlib.suppress(FileNotFoundError):
                freed += filler.stat().st_size
                filler.unlink()
        self._fillers.clear()
        return freed

    def free_bytes(self) -> int:
        """Bytes free on the mounted filesystem now."""
        return shutil.disk_usage(self._mounted()).free
