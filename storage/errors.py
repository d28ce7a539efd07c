"""The exceptions storage raises for conditions the node must act on.

Every failure that means "the data directory cannot be trusted or used as it is"
(another process holds it, another schema version, corruption, a refused
write) is a ``StorageError`` whose message names the path and says what to do;
plyvel's own exceptions never leak out of ``storage``.

A write that failed (the disk is full, the filesystem refused it) is a
``StorageWriteError``: the data already stored is intact, but nothing more may
be written through the same open database (``storage.db.Database.write``) until
it is reopened; whether the failed write itself landed is known only then.
"""

from __future__ import annotations

import errno
from pathlib import Path

# what LevelDB (and the OS, through strerror) says when a filesystem has no room
_NO_ROOM_TEXTS = (
    "No space left on device",
    "Disk quota exceeded",
    "File too large",
)
NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class StorageError(Exception):
    """The database cannot be opened, read or written as asked."""


def says_no_room(detail: str) -> bool:
    """Whether an error text says the filesystem is out of room (full, over quota)."""
    return any(text in detail for text in _NO_ROOM_TEXTS)


class StorageWriteError(StorageError):
    """A write to the data directory failed: nothing more can be written until the
    database is reopened (see the module docstring).

    ``path`` is what could not be written (the database directory, or a file of
    it), ``detail`` the error as the OS or LevelDB gave it, and ``disk_full``
    whether that error says the filesystem has no room left.
    """

    def __init__(self, path: Path, detail: str, *, disk_full: bool | None = None) -> None:
        self.path = path
        self.detail = detail
        self.disk_full = says_no_room(detail) if disk_full is None else disk_full
        super().__init__(f"cannot write to {path}: {detail}")
