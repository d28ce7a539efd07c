"""Writing secret files (keys, tokens): mode 0600 whatever the umask, atomically,
never replacing an existing file unless asked to.

The data goes to a temporary file created exclusively with mode 0600 and
fsynced; it then takes the target's name by a hard link (which fails if the
target exists) or, with ``force``, by ``os.replace``. The directory is fsynced
so the new name survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from storage.files import fsync_dir


class SecretFileError(Exception):
    """The file exists (and ``force`` was not given), or a stale temporary is in the way."""


def _create_0600(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret(path: Path, data: bytes, *, force: bool, what: str) -> None:
    refuse = f"{what} {path} already exists; refusing to overwrite it (use --force to replace it)"
    if not force and (path.exists() or path.is_symlink()):
        raise SecretFileError(refuse)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        _create_0600(tmp, data)
    except FileExistsError:
        raise SecretFileError(f"stale temporary file {tmp} is in the way; remove it") from None
    try:
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise SecretFileError(refuse) from None
            except OSError:  # a filesystem without hard links: exclusive create instead
                try:
                    _create_0600(path, data)
                except FileExistsError:
                    raise SecretFileError(refuse) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
