"""LevelDB on a real full disk (a small tmpfs, ``tests.chaos.disk.SmallDisk``; skipped
where mounting is not permitted): blocks are committed until the disk refuses one.

What must hold, whatever LevelDB did with the write that failed:

- that commit raises ``StorageWriteError`` (``disk_full``), and no later write
  reaches LevelDB, so its log never gets a record behind a partial one;
- reads go on, showing the chain as it was;
- with room again, ``ChainStore.reopen`` gives a database holding a whole
  chain: the blocks before, and the failed one whole or not at all; it takes
  writes again, and opens again after closing;
- closed without reopening (as a ``kill -9`` leaves it) and opened once there is
  room, it holds a whole chain too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import ChainStore, StorageWriteError
from tests.chaos.disk import SmallDisk, mount_denied
from tests.unit.fake_chain import check_fake_chain, commit_fake_block

_DENIED = mount_denied()
pytestmark = pytest.mark.skipif(_DENIED is not None, reason=_DENIED or "")

DISK_BYTES = 4 << 20
GENESIS = bytes(range(32))


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with SmallDisk() as d:
        d.mount(tmp_path / "mnt", DISK_BYTES)
        yield d


def fill_until_refused(store: ChainStore, disk: SmallDisk) -> int:
    """Fill the disk, then commit blocks until one is refused; the tip before it."""
    disk.fill()
    tip = store.tip_height()
    while True:
        try:
            commit_fake_block(store, tip + 1)
        except StorageWriteError as exc:
            assert exc.disk_full, exc
            return tip
        tip += 1
        assert tip < 10_000, "the full disk never refused a block"


def test_a_refused_commit_stops_writes_and_reopen_recovers_a_whole_chain(
    disk: SmallDisk,
) -> None:
    assert disk.path is not None
    store = ChainStore.open(disk.path / "data", create=True, genesis_hash=GENESIS)
    try:
        for h in range(1, 6):
            commit_fake_block(store, h)
        tip = fill_until_refused(store, disk)
        with pytest.raises(StorageWriteError, match="earlier write failed"):
            store.persist_consensus([(b"vote", b"v")])
        assert check_fake_chain(store) == tip

        disk.free()
        store.reopen()
        recovered = check_fake_chain(store)
        assert recovered in (tip, tip + 1)  # the refused block: whole or not at all
        for h in range(recovered + 1, recovered + 4):
            commit_fake_block(store, h)
        assert check_fake_chain(store) == recovered + 3
    finally:
        store.close()
    with ChainStore.open(disk.path / "data", genesis_hash=GENESIS) as again:
        assert check_fake_chain(again) == recovered + 3


def test_closed_while_full_it_opens_with_a_whole_chain_once_there_is_room(
    disk: SmallDisk,
) -> None:
    assert disk.path is not None
    store = ChainStore.open(disk.path / "data", create=True, genesis_hash=GENESIS)
    for h in range(1, 4):
        commit_fake_block(store, h)
    tip = fill_until_refused(store, disk)
    store.close()
    disk.free()
    with ChainStore.open(disk.path / "data", genesis_hash=GENESIS) as again:
        recovered = check_fake_chain(again)
        assert recovered in (tip, tip + 1)
        commit_fake_block(again, recovered + 1)
        assert check_fake_chain(again) == recovered + 1
