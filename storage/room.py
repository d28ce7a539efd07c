"""Whether a data directory's filesystem has room again, after a write failed for lack of it.

Free-space figures (``statvfs``) do not tell whether a write will succeed
(reserved blocks, quotas, a filesystem that compresses), so the test is a
write: ``probe_room(directory, nbytes)`` writes ``nbytes`` of incompressible
bytes to a probe file in ``directory``, fsyncs it and deletes it, and raises
``StorageWriteError`` if the filesystem refuses. Nothing of the database is
touched, so it can run beside the database's readers.

``reopen_room(directory)`` is how much to probe for before a LevelDB database
there is reopened: when it opens, LevelDB replays its write-ahead logs
(``*.log``) into a new level-0 table, so it needs about their size, plus
``MARGIN_BYTES`` for a new manifest, the marker and the first writes after.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

from storage.errors import NO_ROOM_ERRNOS, StorageWriteError

PROBE_NAME: Final = ".hygeia-room-probe"
MARGIN_BYTES: Final = 1 << 20
_CHUNK: Final = 1 << 20

__all__ = ["MARGIN_BYTES", "PROBE_NAME", "probe_room", "reopen_room"]


def reopen_room(directory: Path) -> int:
    """Bytes to find free before reopening the LevelDB database in ``directory``."""
    logs = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.endswith(".log") and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    logs += entry.stat(follow_symlinks=False).st_size
    return logs + MARGIN_BYTES


def probe_room(directory: Path, nbytes: int) -> None:
    """Write, fsync and delete ``nbytes`` in ``directory``; ``StorageWriteError`` (its
    ``disk_full`` set for a full disk or quota) if any of it is refused. The probe
    file is gone afterwards either way."""
    probe = directory / PROBE_NAME
    chunk = os.urandom(min(_CHUNK, max(nbytes, 1)))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            left = nbytes
            while left > 0:
                left -= os.write(fd, chunk[: min(left, len(chunk))])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageWriteError(
            directory, str(exc.strerror or exc), disk_full=exc.errno in NO_ROOM_ERRNOS
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
