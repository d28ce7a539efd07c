"""A failed write to the database (``storage.db``, ``storage.chain``, ``storage.room``):

- a write LevelDB fails is a ``StorageWriteError`` (``disk_full`` when it says
  so; corruption stays a plain ``StorageError``), and every later write through
  the same open database is refused without reaching LevelDB, while reads go on;
- ``ChainStore.reopen`` clears that and keeps the chain; a reopen that fails
  leaves the store closed until one succeeds;
- a marker that cannot be written, and the room probe, fail the same way.

LevelDB is made to fail by a proxy in front of plyvel's handle; the real full
disk (a tmpfs) is tests/integration/test_storage_disk_full.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import plyvel
import pytest

from storage import ChainStore, StorageError, StorageWriteError
from storage.db import open_database
from storage.errors import says_no_room
from storage.layout import Namespace
from storage.marker import Marker, write_marker
from storage.room import MARGIN_BYTES, PROBE_NAME, probe_room, reopen_room
from tests.unit.fake_chain import check_fake_chain, commit_fake_block

GENESIS = bytes(range(32))
NO_SPACE = b"IO error: /data/000014.log: No space left on device"


class FailingRaw:
    """plyvel's DB, but every write batch fails with ``error`` (counted in ``batches``)."""

    def __init__(self, raw: Any, error: plyvel.Error) -> None:
        self._raw = raw
        self.error = error
        self.batches = 0

    def write_batch(self, **kwargs: Any) -> Any:
        self.batches += 1
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def failing(store: ChainStore, error: plyvel.Error) -> FailingRaw:
    db = store.database
    proxy = FailingRaw(db._raw, error)
    db._raw = proxy
    return proxy


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = ChainStore.open(tmp_path / "data", create=True, genesis_hash=GENESIS)
    for h in (1, 2, 3):
        commit_fake_block(s, h)
    yield s
    s.close()


def test_a_failed_write_refuses_every_later_write_but_not_reads(store: ChainStore) -> None:
    proxy = failing(store, plyvel.IOError(NO_SPACE))
    with pytest.raises(StorageWriteError) as caught:
        commit_fake_block(store, 4)
    exc = caught.value
    assert exc.disk_full and exc.path == store.database.path
    assert "No space left on device" in exc.detail and str(store.database.path) in str(exc)
    assert store.database.write_failure is exc
    with pytest.raises(StorageWriteError, match="earlier write failed") as again:
        store.persist_consensus([(b"vote", b"v")])
    assert again.value.disk_full
    assert proxy.batches == 1  # the refusal never reached LevelDB
    assert check_fake_chain(store) == 3  # reads go on: the chain as it was


def test_an_io_error_is_a_write_error_not_a_full_disk(store: ChainStore) -> None:
    failing(store, plyvel.IOError(b"IO error: /data/000014.log: Input/output error"))
    with pytest.raises(StorageWriteError) as caught:
        store.persist_consensus([(b"vote", b"v")])
    assert not caught.value.disk_full


def test_corruption_on_write_is_no_write_error_but_still_stops_writes(store: ChainStore) -> None:
    failing(store, plyvel.CorruptionError(b"Corruption: bad block"))
    with pytest.raises(StorageError, match="corrupted") as caught:
        commit_fake_block(store, 4)
    assert not isinstance(caught.value, StorageWriteError)
    with pytest.raises(StorageWriteError, match="earlier write failed"):
        commit_fake_block(store, 4)


def test_reopen_clears_the_failure_and_keeps_the_chain(store: ChainStore) -> None:
    failing(store, plyvel.IOError(NO_SPACE))
    with pytest.raises(StorageWriteError):
        commit_fake_block(store, 4)
    old = store.database
    store.reopen()
    assert old.closed and store.database is not old
    assert store.database.write_failure is None
    assert store.database.genesis_hash == GENESIS
    assert check_fake_chain(store) == 3
    commit_fake_block(store, 4)
    store.persist_consensus([(b"vote", b"v")])
    assert check_fake_chain(store) == 4
    assert store.consensus_records()[b"vote"] == b"v"


def test_a_reopen_that_fails_leaves_the_store_closed_until_one_works(
    store: ChainStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = open_database
    genesis_asked: list[bytes | None] = []

    def open_once_failing(*args: Any, **kwargs: Any) -> Any:
        genesis_asked.append(kwargs.get("genesis_hash"))
        if len(genesis_asked) == 1:
            raise StorageWriteError(Path("/data"), "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr("storage.chain.open_database", open_once_failing)
    with pytest.raises(StorageWriteError):
        store.reopen()
    with pytest.raises(StorageError, match="closed"):
        store.tip_height()
    with pytest.raises(StorageError, match="closed"):
        commit_fake_block(store, 4)
    store.reopen()
    # both opens check the genesis hash read before the first close
    assert genesis_asked == [GENESIS, GENESIS]
    assert store.database.genesis_hash == GENESIS and check_fake_chain(store) == 3


def test_reopen_checks_the_genesis_as_an_open_does(store: ChainStore) -> None:
    other = bytes(32)
    store._genesis = other  # as if the database had been swapped for another chain's
    store.database.close()
    with pytest.raises(StorageError, match="genesis"):
        store.reopen()


def test_a_marker_that_cannot_be_written_is_a_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.marker

    def full(path: Path, data: bytes, *, mode: int | None = None) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.marker, "replace_atomically", full)
    with pytest.raises(StorageWriteError) as caught:
        write_marker(tmp_path, Marker(1, None, None))
    assert caught.value.disk_full and caught.value.path == tmp_path / "HYGEIA"


def test_says_no_room() -> None:
    assert says_no_room(NO_SPACE.decode())
    assert says_no_room("write: Disk quota exceeded")
    assert not says_no_room("IO error: Input/output error")


# ------------------------------------------------------------------ the room probe
def test_probe_room_writes_and_deletes(tmp_path: Path) -> None:
    probe_room(tmp_path, 3 << 20)
    assert not (tmp_path / PROBE_NAME).exists()
    probe_room(tmp_path, 0)


def test_probe_room_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    written: list[int] = []

    def write(fd: int, data: Any) -> int:
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(StorageWriteError) as caught:
        probe_room(tmp_path, 4 << 20)
    assert caught.value.disk_full and caught.value.path == tmp_path
    assert not (tmp_path / PROBE_NAME).exists()

    def broken(fd: int, data: Any) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "write", broken)
    with pytest.raises(StorageWriteError) as other:
        probe_room(tmp_path, 1)
    assert not other.value.disk_full


def test_reopen_room_is_the_logs_plus_a_margin(tmp_path: Path) -> None:
    assert reopen_room(tmp_path) == MARGIN_BYTES
    (tmp_path / "000005.log").write_bytes(b"x" * 1000)
    (tmp_path / "000007.log").write_bytes(b"x" * 24)
    (tmp_path / "000006.ldb").write_bytes(b"x" * 5000)
    assert reopen_room(tmp_path) == MARGIN_BYTES + 1024
    assert reopen_room(tmp_path / "missing") == MARGIN_BYTES


def test_write_failure_is_none_on_a_healthy_database(store: ChainStore) -> None:
    assert store.database.write_failure is None
    store.database.write([(Namespace.STATE, b"k", b"v")], sync=True)
    assert store.database.write_failure is None
