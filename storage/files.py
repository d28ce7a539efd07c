"""Small files written so that a crash leaves either the old file or the new one.

The node keeps a few files beside its database (the data directory's marker, the
genesis, the config, the testnet description, key files): each is written to a
temporary file in the same directory, fsynced, renamed over the target, and the
directory is fsynced so the new name survives a power cut. One implementation for
all of them; ``node/core/secretfile.py`` adds the no-overwrite and mode 0600 rules
of key files on top of ``fsync_dir``. ``open_regular`` opens a file that must be a
plain file of bounded size (a hostile disk may put a link or a device there).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path
from typing import Literal

__all__ = ["UnsafeFile", "fsync_dir", "open_regular", "replace_atomically"]


class UnsafeFile(Exception):
    """Not a file to read: a symbolic link, another kind of file, or over the limit."""

    def __init__(
        self, path: Path, reason: Literal["symlink", "not-regular", "too-large"], size: int = 0
    ) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.size = size


def open_regular(path: Path, limit: int) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``path`` (symbolic links not
    followed) and its stat; the caller closes it. ``FileNotFoundError`` when it is
    absent, ``UnsafeFile`` when it is a link, not a regular file or over ``limit``
    bytes, ``OSError`` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(path, "symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(path, "not-regular")
        if st.st_size > limit:
            raise UnsafeFile(path, "too-large", st.st_size)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, a new link) durable; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path``, replacing it whole; ``OSError`` if that fails, and
    then ``path`` is untouched and no temporary file is left behind. ``mode`` sets
    the file's permission bits whatever the umask."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
