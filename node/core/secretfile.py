"""Secret files (keys, tokens, master secrets): written with mode 0600 whatever the
umask, atomically, never replacing an existing file unless asked to; read only when
no other user may read or write them.

The data goes to a temporary file created exclusively with mode 0600 and
fsynced; it then takes the target's name by a hard link (which fails if the
target exists) or, with ``force``, by ``os.replace``. The directory is fsynced
so the new name survives a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from storage.files import fsync_dir


class SecretFileError(Exception):
    """Writing: the file exists (and ``force`` was not given), or a stale temporary is in
    the way. Reading: the file is missing, loose, oversized or not JSON."""


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


def loose_mode_error(path: Path, mode: int, what: str) -> str | None:
    """The refusal for a secret file that other users may read or write, or None."""
    if mode & 0o077:
        return (
            f"{what} {path} has mode {stat.S_IMODE(mode):04o}: other users may read or "
            f"write it, so it may have leaked; refusing to use it. If only this user "
            f"could ever read it, fix it with chmod 600 {path}; otherwise replace it"
        )
    return None


def read_secret_json(path: Path, what: str) -> Any:
    """The parsed JSON of a small secret file (``what``: "master file", ...).

    Raises ``SecretFileError`` for a missing or unreadable file, one that is not a
    regular file, one other users may read or write, one over 4 KiB, or one that is
    not JSON; the caller checks the document's shape.
    """
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{what} {path} is not a regular file")
        loose = loose_mode_error(path, st.st_mode, what)
        if loose is not None:
            raise SecretFileError(loose)
        if st.st_size > 4096:
            raise SecretFileError(f"{what} {path} is {st.st_size} bytes; not a {what}")
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise SecretFileError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise SecretFileError(f"{what} {path} is not JSON") from None
