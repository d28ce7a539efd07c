"""Unit tests of the small-disk fault (tests/chaos/disk.py) on a real tmpfs.

Skipped, with the reason, where mounting a tmpfs is not permitted (not root).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.disk import DiskError, SmallDisk, mount_denied

SIZE = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")

_DENIED = mount_denied()
pytestmark = pytest.mark.skipif(_DENIED is not None, reason=_DENIED or "")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with SmallDisk() as d:
        d.mount(tmp_path / "mnt", SIZE)
        yield d


def _write(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.write(b"x" * size)
        f.flush()
        os.fsync(f.fileno())


def test_mount_gives_a_filesystem_of_the_size_asked(disk: SmallDisk) -> None:
    assert disk.path is not None and os.path.ismount(disk.path)
    assert SIZE - PAGE <= disk.free_bytes() <= SIZE


def test_fill_takes_every_byte_and_free_gives_them_back(disk: SmallDisk) -> None:
    assert disk.path is not None
    written = disk.fill()
    assert SIZE - 4 * PAGE <= written <= SIZE
    assert disk.free_bytes() == 0
    with pytest.raises(OSError) as caught:
        _write(disk.path / "more", PAGE)
    assert caught.value.errno == errno.ENOSPC
    assert disk.fill() == 0  # full already
    assert disk.free() == written
    assert disk.free_bytes() >= SIZE - 2 * PAGE  # the failed "more" may hold a page
    _write(disk.path / "more", 64 << 10)  # room again


def test_unmount_is_idempotent_and_removes_the_directory_it_made(tmp_path: Path) -> None:
    where = tmp_path / "made"
    disk = SmallDisk()
    disk.mount(where, SIZE)
    disk.unmount()
    disk.unmount()
    assert not where.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with SmallDisk() as d:
        d.mount(kept, SIZE)
    assert kept.is_dir() and not os.path.ismount(kept)


def test_leaving_the_block_unmounts_even_a_busy_mount(tmp_path: Path) -> None:
    """A file held open (a node still running) does not stop the unmount: it is
    detached lazily and the holder keeps writing to its own file."""
    where = tmp_path / "busy"
    with pytest.raises(RuntimeError, match="test body"), SmallDisk() as d:
        d.mount(where, SIZE)
        held = (where / "held").open("wb")
        raise RuntimeError("test body failed")
    try:
        assert not os.path.ismount(where)
        held.write(b"still mine")
        held.flush()
    finally:
        held.close()


def test_refusals(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "data").write_bytes(b"keep me")
    disk = SmallDisk()
    with pytest.raises(DiskError, match="not empty"):
        disk.mount(full, SIZE)
    assert (full / "data").read_bytes() == b"keep me"
    with pytest.raises(DiskError, match="no tmpfs is mounted"):
        disk.fill()
    with pytest.raises(ValueError):
        disk.mount(tmp_path / "zero", 0)
    with SmallDisk() as d:
        d.mount(tmp_path / "once", SIZE)
        with pytest.raises(DiskError, match="already mounted"):
            d.mount(tmp_path / "twice", SIZE)
