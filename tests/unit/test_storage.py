"""Behaviour of the chain stores (LevelDB ``ChainStore`` and ``MemoryChainStore``)
and of opening a LevelDB database: schema, lock, corruption, crash durability.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from storage import (
    SCHEMA_VERSION,
    ChainStorage,
    ChainStore,
    MemoryChainStore,
    StorageError,
    open_database,
)
from storage.db import WriteOp
from storage.layout import META_SCHEMA, Namespace, encode_u64

REPO = Path(__file__).resolve().parents[2]


# -- deterministic fake blocks (also used by the kill -9 child process) ------------


def block_hash(height: int) -> bytes:
    return hashlib.sha256(b"block-hash:%d" % height).digest()


def block_bytes(height: int, size: int = 2048) -> bytes:
    seed = hashlib.sha256(b"block:%d" % height).digest()
    return (seed * (size // len(seed) + 1))[:size]


def tx_hashes(height: int, count: int = 3) -> list[bytes]:
    return [hashlib.sha256(b"tx:%d:%d" % (height, i)).digest() for i in range(count)]


def commit_fake_block(store: ChainStorage, height: int) -> None:
    store.commit_block(
        height,
        block_hash(height),
        block_bytes(height),
        tx_hashes(height),
        [(b"acct/%d" % height, b"v%d" % height), (b"latest", b"%d" % height)],
        [(b"slot/%d" % height, b"rec%d" % height), (b"latest", b"%d" % height)],
    )


def check_fake_chain(store: ChainStorage) -> int:
    """Assert blocks 1..tip are all there, whole, with everything committed with them."""
    tip = store.tip_height()
    for h in range(1, tip + 1):
        assert store.block_by_height(h) == block_bytes(h), h
        assert store.height_of_block(block_hash(h)) == h
        for i, tx in enumerate(tx_hashes(h)):
            assert store.tx_location(tx) == (h, i)
        assert store.state_get(b"acct/%d" % h) == b"v%d" % h
    records = store.consensus_records()
    if tip:
        assert store.state_get(b"latest") == b"%d" % tip
        assert records[b"latest"] == b"%d" % tip
    nxt = tip + 1
    assert store.block_by_height(nxt) is None
    assert store.height_of_block(block_hash(nxt)) is None
    assert all(store.tx_location(tx) is None for tx in tx_hashes(nxt))
    assert store.state_get(b"acct/%d" % nxt) is None
    assert b"slot/%d" % nxt not in records
    return tip


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(params=["leveldb", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainStorage]:
    s: ChainStorage
    s = ChainStore.open(tmp_path / "data") if request.param == "leveldb" else MemoryChainStore()
    yield s
    s.close()


def nothing_committed(store: ChainStorage) -> None:
    assert store.tip_height() == 0
    assert store.block_by_height(1) is None
    assert store.height_of_block(b"h1") is None
    assert store.tx_location(b"t1") is None
    assert list(store.state_iter()) == []
    assert store.consensus_records() == {}


# -- behaviour shared by both stores ------------------------------------------------


def test_empty_store(store: ChainStorage) -> None:
    nothing_committed(store)
    assert store.block_by_height(0) is None
    assert store.block_by_height(-1) is None


def test_round_trip(store: ChainStorage) -> None:
    store.commit_block(
        1,
        b"h1",
        b"block one",
        [b"t1", b"t2"],
        [(b"a/x", b"1"), (b"a/y", b"2"), (b"b/z", b"3")],
        [(b"view", b"0")],
    )
    store.commit_block(2, b"h2", b"block two", [b"t3"], [(b"a/x", None), (b"a/w", b"4")])
    assert store.tip_height() == 2
    assert store.block_by_height(1) == b"block one"
    assert store.block_by_height(2) == b"block two"
    assert store.block_by_height(3) is None
    assert store.height_of_block(b"h1") == 1
    assert store.height_of_block(b"h2") == 2
    assert store.tx_location(b"t1") == (1, 0)
    assert store.tx_location(b"t2") == (1, 1)
    assert store.tx_location(b"t3") == (2, 0)
    assert store.tx_location(b"nope") is None
    assert store.state_get(b"a/x") is None
    assert store.state_get(b"a/y") == b"2"
    assert list(store.state_iter(b"a/")) == [(b"a/w", b"4"), (b"a/y", b"2")]
    assert list(store.state_iter()) == [(b"a/w", b"4"), (b"a/y", b"2"), (b"b/z", b"3")]
    assert store.consensus_records() == {b"view": b"0"}


def test_empty_block_and_empty_values(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"", [], [(b"k", b"")])
    assert store.block_by_height(1) == b""
    assert store.state_get(b"k") == b""
    assert store.tip_height() == 1


def test_last_write_to_a_key_wins(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"b", [], [(b"k", b"1"), (b"k", b"2"), (b"d", b"x"), (b"d", None)])
    assert store.state_get(b"k") == b"2"
    assert store.state_get(b"d") is None


def test_first_location_of_a_tx_wins(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"b1", [b"t1", b"t2", b"t1"], [])
    store.commit_block(2, b"h2", b"b2", [b"t3", b"t2"], [])
    assert store.tx_location(b"t1") == (1, 0)
    assert store.tx_location(b"t2") == (1, 1)
    assert store.tx_location(b"t3") == (2, 0)


@pytest.mark.parametrize("height", [0, 2, 5, -1])
def test_wrong_height_refused_on_empty_store(store: ChainStorage, height: int) -> None:
    with pytest.raises(StorageError, match=f"height {height}: the tip is 0"):
        store.commit_block(height, b"h", b"b", [b"t"], [(b"k", b"v")], [(b"c", b"r")])
    nothing_committed(store)


def test_height_must_follow_tip(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"b1", [b"t1"], [(b"k", b"1")])
    for bad in (1, 3):
        with pytest.raises(StorageError, match=f"height {bad}: the tip is 1"):
            store.commit_block(bad, b"hx", b"bx", [b"tx"], [(b"k", b"x")])
    assert store.tip_height() == 1
    assert store.block_by_height(1) == b"b1"
    assert store.height_of_block(b"hx") is None
    assert store.tx_location(b"tx") is None
    assert store.state_get(b"k") == b"1"


class ExplodingSequence(Sequence[tuple[bytes, bytes | None]]):
    """Yields two good writes, then fails: a failure in the middle of a commit."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes | None]] = [(b"k1", b"v1"), (b"k2", b"v2")]

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            raise NotImplementedError
        if i >= 3:
            raise IndexError(i)
        if i == 2:
            raise RuntimeError("boom in the middle")
        return self.items[i]


def test_commit_is_atomic_when_an_argument_is_bad(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"b1", [b"t1"], [(b"k", b"1")], [(b"c", b"1")])
    bad_value: Any = [(b"k", b"2"), (b"k2", b"x"), (b"k3", "not bytes")]
    with pytest.raises(TypeError, match=r"state_writes\[2\] value must be bytes"):
        store.commit_block(2, b"h2", b"b2", [b"t2"], bad_value, [(b"c", b"2")])
    bad_record: Any = [(b"c", b"2"), b"oops"]
    with pytest.raises(TypeError, match=r"consensus_writes\[1\]"):
        store.commit_block(2, b"h2", b"b2", [b"t2"], [(b"k", b"2")], bad_record)
    bad_hashes: Any = [b"t2", "t3"]
    with pytest.raises(TypeError, match=r"tx_hashes\[1\]"):
        store.commit_block(2, b"h2", b"b2", bad_hashes, [(b"k", b"2")])
    with pytest.raises(RuntimeError, match="boom in the middle"):
        store.commit_block(2, b"h2", b"b2", [b"t2"], ExplodingSequence())
    assert store.tip_height() == 1
    assert store.block_by_height(2) is None
    assert store.height_of_block(b"h2") is None
    assert store.tx_location(b"t2") is None
    assert store.state_get(b"k") == b"1"
    assert store.state_get(b"k1") is None
    assert store.state_get(b"k2") is None
    assert store.consensus_records() == {b"c": b"1"}
    commit_fake_block(store, 2)  # and the store still works


def test_persist_consensus(store: ChainStorage) -> None:
    store.persist_consensus([(b"view", b"1"), (b"slot/1", b"a"), (b"slot/2", b"b")])
    store.persist_consensus(((b"slot/1", None), (b"view", b"2")))
    store.persist_consensus([])
    assert store.consensus_records() == {b"slot/2": b"b", b"view": b"2"}
    assert list(store.consensus_records()) == [b"slot/2", b"view"]
    with pytest.raises(TypeError):
        store.persist_consensus([(b"view", b"3"), (b"x", 3)])  # type: ignore[list-item]
    assert store.consensus_records()[b"view"] == b"2"
    assert store.tip_height() == 0


def test_snapshot_isolation(store: ChainStorage) -> None:
    store.commit_block(1, b"h1", b"b1", [b"t1"], [(b"s/a", b"1"), (b"s/b", b"1")], [(b"c", b"1")])
    with store.snapshot() as snap:
        store.commit_block(2, b"h2", b"b2", [b"t2"], [(b"s/a", None), (b"s/c", b"2")])
        store.persist_consensus([(b"c", b"2"), (b"d", b"2")])
        assert snap.tip_height() == 1
        assert snap.block_by_height(2) is None
        assert snap.height_of_block(b"h2") is None
        assert snap.tx_location(b"t2") is None
        assert snap.tx_location(b"t1") == (1, 0)
        assert snap.state_get(b"s/a") == b"1"
        assert list(snap.state_iter(b"s/")) == [(b"s/a", b"1"), (b"s/b", b"1")]
        assert snap.consensus_records() == {b"c": b"1"}
    assert store.tip_height() == 2
    assert list(store.state_iter(b"s/")) == [(b"s/b", b"1"), (b"s/c", b"2")]
    assert store.consensus_records() == {b"c": b"2", b"d": b"2"}
    with pytest.raises(StorageError):
        snap.state_get(b"s/a")


def test_approximate_size_grows(store: ChainStorage) -> None:
    before = store.approximate_size()
    for h in range(1, 6):
        commit_fake_block(store, h)
    assert store.approximate_size() > before
    assert check_fake_chain(store) == 5


def test_closed_store_refuses(store: ChainStorage) -> None:
    commit_fake_block(store, 1)
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.tip_height()
    with pytest.raises(StorageError, match="closed"):
        commit_fake_block(store, 2)


# -- LevelDB only -------------------------------------------------------------------


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "home" / "data"
    with ChainStore.open(path) as store:
        for h in range(1, 4):
            commit_fake_block(store, h)
        store.persist_consensus([(b"view", b"7")])
    assert path.is_dir()
    with ChainStore.open(path) as store:
        assert check_fake_chain(store) == 3
        assert store.consensus_records()[b"view"] == b"7"
        commit_fake_block(store, 4)
        assert store.approximate_size() > 0


def test_new_database_records_schema_version(tmp_path: Path) -> None:
    with open_database(tmp_path / "db") as db:
        assert db.get(Namespace.META, META_SCHEMA) == encode_u64(SCHEMA_VERSION)


def test_schema_mismatch_names_path_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_database(path) as db:
        db.write([(Namespace.META, META_SCHEMA, encode_u64(99))], sync=True)
    with pytest.raises(StorageError) as err:
        open_database(path)
    msg = str(err.value)
    assert str(path) in msg
    assert (
        f"schema version 99, but this build of hygeia expects schema version {SCHEMA_VERSION}"
        in msg
    )
    # the refusal released the database (no LOCK left behind): fix it by hand, reopen
    import plyvel

    raw = plyvel.DB(str(path))
    raw.put(Namespace.META.value + META_SCHEMA, encode_u64(SCHEMA_VERSION), sync=True)
    raw.close()
    with open_database(path) as db:
        assert db.get(Namespace.META, META_SCHEMA) == encode_u64(SCHEMA_VERSION)


def test_non_empty_database_without_schema_is_refused(tmp_path: Path) -> None:
    import plyvel

    path = tmp_path / "db"
    raw = plyvel.DB(str(path), create_if_missing=True)
    raw.put(b"something", b"else")
    raw.close()
    with pytest.raises(StorageError, match=f"database {path} has no schema version"):
        open_database(path)


def test_write_batch_failing_half_way_writes_nothing(tmp_path: Path) -> None:
    def ops() -> Iterator[WriteOp]:
        yield (Namespace.STATE, b"a", b"1")
        yield (Namespace.META, b"height", encode_u64(1))
        raise RuntimeError("failure while building the batch")

    with open_database(tmp_path / "db") as db:
        with pytest.raises(RuntimeError):
            db.write(ops(), sync=True)
        assert db.get(Namespace.STATE, b"a") is None
        assert db.get(Namespace.META, b"height") is None


def test_namespaces_do_not_overlap(tmp_path: Path) -> None:
    with open_database(tmp_path / "db") as db:
        db.write([(ns, b"k", ns.value) for ns in Namespace], sync=True)
        for ns in Namespace:
            assert db.get(ns, b"k") == ns.value
            assert list(db.iterate(ns, b"k")) == [(b"k", ns.value)]


def test_close_closes_live_iterators_and_snapshots(tmp_path: Path) -> None:
    store = ChainStore.open(tmp_path / "db")
    store.commit_block(1, b"h1", b"b1", [], [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    it = store.state_iter()
    assert next(it) == (b"a", b"1")
    snap_cm = store.snapshot()
    snap = snap_cm.__enter__()
    snap_it = snap.state_iter()
    assert next(snap_it) == (b"a", b"1")
    store.close()
    with pytest.raises(StorageError, match="closed"):
        next(it)
    with pytest.raises(StorageError):
        next(snap_it)
    with pytest.raises(StorageError):
        snap.state_get(b"a")
    snap_cm.__exit__(None, None, None)  # releasing after close is harmless
    store.close()  # idempotent


def test_abandoned_iterator_is_closed(tmp_path: Path) -> None:
    with ChainStore.open(tmp_path / "db") as store:
        store.commit_block(1, b"h1", b"b1", [], [(b"a", b"1"), (b"b", b"2")])
        for key, _ in store.state_iter():
            if key == b"a":
                break
        assert store.database._iterators._live == {}


def _run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


OPEN_IN_CHILD = """
import sys
from storage import StorageError, open_database
try:
    db = open_database(sys.argv[1])
except StorageError as exc:
    print(exc)
    sys.exit(3)
db.close()
print("opened")
"""


def test_second_process_is_refused_while_lock_held(tmp_path: Path) -> None:
    path = tmp_path / "data"
    db = open_database(path)
    try:
        child = _run_child(OPEN_IN_CHILD, str(path))
        assert child.returncode == 3, child.stderr
        assert child.stdout.strip() == (f"database {path} is in use by another process (LOCK held)")
    finally:
        db.close()
    child = _run_child(OPEN_IN_CHILD, str(path))
    assert (child.returncode, child.stdout.strip()) == (0, "opened"), child.stderr


def _data_files(path: Path) -> dict[str, bytes]:
    """Contents of every file LevelDB keeps data in (not its info LOG or LOCK)."""
    return {
        f.name: f.read_bytes()
        for f in sorted(path.iterdir())
        if f.name not in {"LOCK", "LOG", "LOG.old"}
    }


def _corrupt(path: Path, target: str) -> None:
    if target == "CURRENT":
        (path / "CURRENT").write_bytes(b"\x00\xffgarbage")
    elif target == "MANIFEST":
        (manifest,) = path.glob("MANIFEST-*")
        manifest.write_bytes(b"garbage" * 20)
    else:  # a checksum mismatch inside the write-ahead log
        (log,) = path.glob("*.log")
        data = bytearray(log.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 16] = b"X" * 16
        log.write_bytes(bytes(data))


@pytest.mark.parametrize("target", ["CURRENT", "MANIFEST", "log"])
def test_corrupted_database_is_refused_and_left_untouched(tmp_path: Path, target: str) -> None:
    path = tmp_path / "data"
    with ChainStore.open(path) as store:
        for h in range(1, 6):
            commit_fake_block(store, h)
    original = _data_files(path)
    _corrupt(path, target)
    corrupted = _data_files(path)
    assert corrupted != original
    for _ in range(2):  # a retry changes nothing either
        with pytest.raises(StorageError) as err:
            ChainStore.open(path)
        msg = str(err.value)
        assert msg.startswith(f"database {path} is corrupted")
        assert "Nothing was repaired" in msg
        assert _data_files(path) == corrupted
    # undoing the damage gives back the whole chain: nothing was dropped
    for name, data in original.items():
        (path / name).write_bytes(data)
    with ChainStore.open(path) as store:
        assert check_fake_chain(store) == 5


CRASHING_WRITER = """
import sys
from storage import ChainStore
from tests.unit.test_storage import commit_fake_block
store = ChainStore.open(sys.argv[1])
height = store.tip_height()
while True:
    height += 1
    commit_fake_block(store, height)
    print(height, flush=True)
"""


def _run_and_kill(path: Path, heights: int, linger: float) -> int:
    """Start a writer, SIGKILL it after it reported ``heights`` commits; return the
    last height it reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = 0
    try:
        seen = 0
        while seen < heights:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer died: {proc.stderr.read() if proc.stderr else ''}")
            last = int(line)
            seen += 1
        time.sleep(linger)  # let it get somewhere inside the next commits
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for line in proc.stdout:  # heights reported before it died
            last = int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return last


def test_kill_9_never_loses_a_reported_commit_nor_leaves_half_a_block(tmp_path: Path) -> None:
    path = tmp_path / "data"
    previous = 0
    for round_, linger in enumerate((0.0, 0.003, 0.011)):
        last = _run_and_kill(path, heights=20 + 7 * round_, linger=linger)
        assert last > previous
        with ChainStore.open(path) as store:
            tip = check_fake_chain(store)
        assert tip >= last
        previous = tip
