"""Small files written so that a crash leaves either the old file or the new one.

The node keeps a few files beside its database (the data directory's marker, the
genesis, the config, the testnet description, key files): each is written to a
temporary file in the same directory, fsynced, renamed over the target, and the
directory is fsynced so the new name survives a power cut. One implementation for
all of them; ``node/core/secretfile.py`` adds the no-overwrite and mode 0600 rules
of key files on top of ``fsync_dir``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

__all__ = ["fsync_dir", "replace_atomically"]


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
