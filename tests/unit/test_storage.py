"""Behaviour of the chain stores (LevelDB ``ChainStore`` and ``MemoryChainStore``)
and of opening a LevelDB database: schema, lock, corruption, crash durability.
"""

from __future__ import annotations

import hashlib
import json
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
from storage.marker import GenesisMismatchError
from tests.unit.fake_chain import (
    check_fake_chain,
    commit_fake_block,
)

REPO = Path(__file__).resolve().parents[2]


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(params=["leveldb", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainStorage]:
    s: ChainStorage
    if request.param == "leveldb":
        s = ChainStore.open(tmp_path / "data", create=True)
    else:
        s = MemoryChainStore()
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
    with ChainStore.open(path, create=True) as store:
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
    with open_database(tmp_path / "db", create=True) as db:
        assert db.get(Namespace.META, META_SCHEMA) == encode_u64(SCHEMA_VERSION)


def test_schema_mismatch_names_path_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with open_database(path, create=True) as db:
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


def test_leveldb_without_marker_or_schema_is_refused(tmp_path: Path) -> None:
    import plyvel

    path = tmp_path / "db"
    raw = plyvel.DB(str(path), create_if_missing=True)
    raw.put(b"something", b"else")
    raw.close()
    before = _tree(path)
    with pytest.raises(StorageError, match=f"database {path} has no HYGEIA marker.*adopt"):
        open_database(path)
    assert _tree(path) == before
    with pytest.raises(StorageError, match=f"database {path} has no schema version"):
        open_database(path, adopt=True)
    assert not (path / "HYGEIA").exists()


def test_write_batch_failing_half_way_writes_nothing(tmp_path: Path) -> None:
    def ops() -> Iterator[WriteOp]:
        yield (Namespace.STATE, b"a", b"1")
        yield (Namespace.META, b"height", encode_u64(1))
        raise RuntimeError("failure while building the batch")

    with open_database(tmp_path / "db", create=True) as db:
        with pytest.raises(RuntimeError):
            db.write(ops(), sync=True)
        assert db.get(Namespace.STATE, b"a") is None
        assert db.get(Namespace.META, b"height") is None


def test_namespaces_do_not_overlap(tmp_path: Path) -> None:
    with open_database(tmp_path / "db", create=True) as db:
        db.write([(ns, b"k", ns.value) for ns in Namespace], sync=True)
        for ns in Namespace:
            assert db.get(ns, b"k") == ns.value
            assert list(db.iterate(ns, b"k")) == [(b"k", ns.value)]


def test_close_closes_live_iterators_and_snapshots(tmp_path: Path) -> None:
    store = ChainStore.open(tmp_path / "db", create=True)
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
    with ChainStore.open(tmp_path / "db", create=True) as store:
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
    db = open_database(path, create=True)
    try:
        child = _run_child(OPEN_IN_CHILD, str(path))
        assert child.returncode == 3, child.stderr
        assert child.stdout.strip() == (f"database {path} is in use by another process (LOCK held)")
    finally:
        db.close()
    child = _run_child(OPEN_IN_CHILD, str(path))
    assert (child.returncode, child.stdout.strip()) == (0, "opened"), child.stderr


def _tree(path: Path) -> dict[str, bytes]:
    """Every file of ``path`` (LevelDB's info LOG included): what a refusal must not change."""
    return {f.name: f.read_bytes() for f in sorted(path.iterdir())}


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
    with ChainStore.open(path, create=True) as store:
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
        assert "Nothing was repaired" in msg or "Nothing was changed" in msg
        assert _data_files(path) == corrupted
    # undoing the damage gives back the whole chain: nothing was dropped
    for name, data in original.items():
        (path / name).write_bytes(data)
    with ChainStore.open(path) as store:
        assert check_fake_chain(store) == 5


CRASHING_WRITER = """
import os, sys
from storage import ChainStore
from tests.unit.fake_chain import commit_fake_block
store = ChainStore.open(sys.argv[1], create=not os.path.exists(sys.argv[1]))
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


# -- damaged data directories (issue 11): refused before LevelDB touches them ----------


def _chain_on_disk(path: Path, height: int = 5, genesis: bytes | None = None) -> None:
    with ChainStore.open(path, create=True, genesis_hash=genesis) as store:
        for h in range(1, height + 1):
            commit_fake_block(store, h)


def test_opening_never_creates_a_database(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path / "empty"):
        if path.name == "empty":
            path.mkdir()
        with pytest.raises(StorageError, match=f"no database in {path}: `hygeia init` creates"):
            open_database(path)
        assert not path.exists() or not any(path.iterdir())


def test_a_mount_point_with_lost_and_found_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "data"
    (path / "lost+found").mkdir(parents=True)
    with pytest.raises(StorageError, match="no database in"):
        open_database(path)
    open_database(path, create=True).close()
    with open_database(path):
        pass


def test_create_refuses_a_directory_that_holds_anything(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 2)
    before = _tree(path)
    with pytest.raises(StorageError, match="not empty; refusing to create a database"):
        open_database(path, create=True)
    assert _tree(path) == before
    with ChainStore.open(path) as store:
        assert check_fake_chain(store) == 2


def test_missing_current_is_refused_and_nothing_is_touched(tmp_path: Path) -> None:
    """Issue 11: LevelDB with create_if_missing made an empty database over the tables."""
    path = tmp_path / "data"
    _chain_on_disk(path, 5)
    manifest = (path / "CURRENT").read_text().strip()
    current = (path / "CURRENT").read_bytes()
    (path / "CURRENT").unlink()
    before = _tree(path)
    for _ in range(2):
        with pytest.raises(StorageError) as err:
            ChainStore.open(path)
        msg = str(err.value)
        assert msg.startswith(f"database {path} is damaged: LevelDB's CURRENT file is missing")
        assert f"CURRENT named {manifest}, which is still there" in msg
        assert "restore the data directory from a backup" in msg
        assert _tree(path) == before
    with pytest.raises(StorageError, match="refusing to create"):
        open_database(path, create=True)
    assert _tree(path) == before
    (path / "CURRENT").write_bytes(current)  # the operator's repair
    with ChainStore.open(path) as store:
        assert check_fake_chain(store) == 5


def test_missing_current_and_marker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    (path / "CURRENT").unlink()
    (path / "HYGEIA").unlink()
    before = _tree(path)
    for adopt in (False, True):
        with pytest.raises(StorageError, match="neither LevelDB's CURRENT nor the HYGEIA marker"):
            open_database(path, adopt=adopt)
    assert _tree(path) == before


def test_current_naming_a_missing_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    (manifest,) = path.glob("MANIFEST-*")
    manifest.rename(path / "saved")
    before = _tree(path)
    with pytest.raises(StorageError, match=f"CURRENT names {manifest.name}, which is missing"):
        open_database(path)
    assert _tree(path) == before


@pytest.mark.parametrize("content", [b"", b"{", b'{"format": "other"}', b"x" * 5000])
def test_damaged_marker_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    (path / "HYGEIA").write_bytes(content)
    before = _tree(path)
    with pytest.raises(StorageError, match="HYGEIA is damaged"):
        open_database(path)
    assert _tree(path) == before


def test_marker_follows_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    for _ in range(2):
        with open_database(path):
            pass
        doc = json.loads((path / "HYGEIA").read_text())
        assert doc["manifest"] == (path / "CURRENT").read_text().strip()
        assert doc["schema_version"] == SCHEMA_VERSION and doc["genesis_hash"] is None
    assert not [p for p in path.iterdir() if p.name.startswith(".HYGEIA")]


def test_marker_schema_version_is_checked_before_leveldb(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    doc = json.loads((path / "HYGEIA").read_text())
    (path / "HYGEIA").write_text(json.dumps({**doc, "schema_version": 7}))
    before = _tree(path)
    with pytest.raises(StorageError, match="has schema version 7, but this build"):
        open_database(path)
    assert _tree(path) == before


GENESIS_A = hashlib.sha256(b"genesis a").digest()
GENESIS_B = hashlib.sha256(b"genesis b").digest()


def test_genesis_hash_recorded_at_creation_and_checked_before_leveldb(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 2, genesis=GENESIS_A)
    assert json.loads((path / "HYGEIA").read_text())["genesis_hash"] == GENESIS_A.hex()
    before = _tree(path)
    with pytest.raises(GenesisMismatchError) as err:
        open_database(path, genesis_hash=GENESIS_B)
    assert (err.value.recorded, err.value.expected) == (GENESIS_A.hex(), GENESIS_B.hex())
    assert _tree(path) == before
    with open_database(path, genesis_hash=GENESIS_A) as db:
        assert db.genesis_hash == GENESIS_A
    with open_database(path) as db:  # no genesis given: not checked
        assert db.genesis_hash == GENESIS_A
        with pytest.raises(GenesisMismatchError):
            db.record_genesis(GENESIS_B)


def test_genesis_recorded_later_and_marker_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 1)
    with open_database(path, genesis_hash=GENESIS_B) as db:  # none recorded: accepted
        assert db.genesis_hash is None
        db.record_genesis(GENESIS_A)
        db.record_genesis(GENESIS_A)  # idempotent
    assert json.loads((path / "HYGEIA").read_text())["genesis_hash"] == GENESIS_A.hex()
    with pytest.raises(GenesisMismatchError):
        open_database(path, genesis_hash=GENESIS_B)
    # a marker that disagrees with the database (e.g. copied from another node)
    doc = json.loads((path / "HYGEIA").read_text())
    (path / "HYGEIA").write_text(json.dumps({**doc, "genesis_hash": GENESIS_B.hex()}))
    with pytest.raises(StorageError, match="is inconsistent: its HYGEIA marker records"):
        open_database(path)


def test_missing_latest_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 3)
    with open_database(path) as db:
        db.write([(Namespace.BLOCKS, encode_u64(3), None)], sync=True)
    with pytest.raises(StorageError, match=r"its latest block \(height 3\) is missing"):
        ChainStore.open(path)


def test_adopting_a_database_made_before_markers(tmp_path: Path) -> None:
    path = tmp_path / "data"
    _chain_on_disk(path, 3)
    (path / "HYGEIA").unlink()  # as an older hygeia left it
    with pytest.raises(StorageError, match="no HYGEIA marker"):
        ChainStore.open(path)
    with open_database(path, adopt=True) as db:
        db.record_genesis(GENESIS_A)
    with ChainStore.open(path, genesis_hash=GENESIS_A) as store:
        assert check_fake_chain(store) == 3
