"""The snapshots a node keeps on disk (node/statesync/store.py), in a temporary
directory: a pending snapshot (chunks and manifest before signatures) is not
served; once completed, its manifest (with the signatures and epoch links) and
its chunks are served as written, also by a store opened afresh; pending and
complete heights are listed; ``prune`` keeps the ``keep`` newest complete
snapshots and drops pending ones older than the newest complete one;
``discard`` deletes one; a rewritten pending snapshot replaces the earlier
attempt; a damaged ``manifest.bin`` is not served."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from node.ledger.state_hash import StateHash
from node.statesync.manifest import (
    MANIFEST_FORMAT,
    CheckpointSig,
    Manifest,
    cut_chunks,
    decode_manifest,
    encode_manifest,
)
from node.statesync.store import SnapshotStore

CHAIN = "hygeia-test"
CHUNK_BYTES = 512


def entries(height: int, n: int = 60) -> list[tuple[bytes, bytes]]:
    return [(b"k/%04d" % i, b"v%d/%d" % (height, i) * 3) for i in range(n)]


def base(height: int) -> Manifest:
    """A manifest as the node writes it before signatures (no chunks yet)."""
    return Manifest(
        format=MANIFEST_FORMAT,
        chain_id=CHAIN,
        height=height,
        block=b"block %d" % height,
        prev_state_root=hashlib.sha256(b"prev %d" % height).digest(),
        writes_digest=hashlib.sha256(b"writes %d" % height).digest(),
        results_root=hashlib.sha256(b"results %d" % height).digest(),
        state_hash=StateHash.of(entries(height)).to_bytes(),
        epoch=0,
        checkpoint=[],
        epochs=b"[]",
        chunks=[],
    )


def sigs(height: int) -> list[CheckpointSig]:
    return [CheckpointSig(i, bytes([i, height % 256]) * 32) for i in (0, 1, 2)]


def chunks_of(height: int, n: int = 60) -> list[bytes]:
    return [data for _, data in cut_chunks(entries(height, n), CHUNK_BYTES)]


def take(store: SnapshotStore, height: int, *, complete: bool = True, n: int = 60) -> Manifest:
    """Write the snapshot of ``height`` and, if ``complete``, sign it off."""
    pending = store.write_pending(base(height), cut_chunks(entries(height, n), CHUNK_BYTES))
    if not complete:
        return pending
    return store.complete(height, 0, sigs(height), b"[]")


def test_empty_store(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots", keep=2)
    assert store.complete_heights() == [] and store.pending_heights() == []
    assert store.newest_manifest() is None
    assert store.manifest(16) is None and store.chunk(16, 0) is None
    assert store.prune() == []


def test_write_pending_then_complete_serves_what_was_written(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    pending = store.write_pending(base(16), cut_chunks(entries(16), CHUNK_BYTES))
    infos = [info for info, _ in cut_chunks(entries(16), CHUNK_BYTES)]
    assert len(infos) >= 3
    assert pending == msgspec.structs.replace(base(16), chunks=infos)
    assert store.pending_heights() == [16] and store.complete_heights() == []

    links = b'[{"epoch": 1}]'
    complete = store.complete(16, 1, sigs(16), links)
    assert complete == msgspec.structs.replace(pending, epoch=1, checkpoint=sigs(16), epochs=links)
    assert store.pending_heights() == [] and store.complete_heights() == [16]
    assert store.manifest(16) == encode_manifest(complete)
    assert store.newest_manifest() == encode_manifest(complete)
    assert decode_manifest(store.newest_manifest() or b"") == complete
    for index, data in enumerate(chunks_of(16)):
        assert store.chunk(16, index) == data
    assert store.chunk(16, len(infos)) is None
    assert store.chunk(16, -1) is None
    assert store.chunk(32, 0) is None


def test_a_fresh_store_reads_the_same_from_disk(tmp_path: Path) -> None:
    written = take(SnapshotStore(tmp_path, keep=2), 16)
    again = SnapshotStore(tmp_path, keep=2)
    assert again.complete_heights() == [16]
    assert again.manifest(16) == encode_manifest(written)
    assert again.chunk(16, 1) == chunks_of(16)[1]
    layout = sorted(p.name for p in (tmp_path / "000000000016").iterdir())
    assert "manifest.bin" in layout and "pending.bin" in layout
    assert "chunk-000000.bin" in layout
    assert not [name for name in layout if name.endswith(".tmp")]


def test_pending_snapshot_is_not_served(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    take(store, 16, complete=False)
    assert store.manifest(16) is None
    assert store.chunk(16, 0) is None
    assert store.newest_manifest() is None
    take(store, 8)
    take(store, 32, complete=False)
    assert store.newest_manifest() == store.manifest(8)
    assert store.pending_heights() == [16, 32] and store.complete_heights() == [8]


def test_heights_are_listed_in_order(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=10)
    for height in (160, 16, 1600):
        take(store, height)
    for height in (48, 3200):
        take(store, height, complete=False)
    (tmp_path / "not-a-snapshot").mkdir()
    (tmp_path / "12345").mkdir()  # no manifest of either kind
    assert store.complete_heights() == [16, 160, 1600]
    assert store.pending_heights() == [48, 3200]
    assert decode_manifest(store.newest_manifest() or b"").height == 1600


def test_prune_keeps_the_newest_complete_and_drops_older_pending(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for height in (16, 32, 48):
        take(store, height)
    for height in (8, 40, 64):
        take(store, height, complete=False)
    assert store.manifest(16) is not None  # in the cache
    assert store.prune() == [8, 16, 40]
    assert store.complete_heights() == [32, 48]
    assert store.pending_heights() == [64]  # newer than the newest complete: kept
    assert store.manifest(16) is None and store.chunk(16, 0) is None
    assert not (tmp_path / "000000000016").exists()
    assert not (tmp_path / "000000000040").exists()
    assert store.prune() == []


def test_prune_without_a_complete_snapshot_keeps_every_pending(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=1)
    for height in (16, 32):
        take(store, height, complete=False)
    assert store.prune() == []
    assert store.pending_heights() == [16, 32]


def test_prune_with_keep_one(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=1)
    take(store, 16)
    assert store.prune() == []
    take(store, 32)
    assert store.prune() == [16]
    assert store.complete_heights() == [32]
    assert store.newest_manifest() == store.manifest(32)


def test_discard(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    take(store, 16)
    take(store, 32, complete=False)
    assert store.manifest(16) is not None
    store.discard(16)
    store.discard(32)
    store.discard(48)  # nothing there: no error
    assert store.complete_heights() == [] and store.pending_heights() == []
    assert store.manifest(16) is None and store.chunk(16, 0) is None
    assert store.newest_manifest() is None


def test_rewriting_a_pending_snapshot_replaces_the_earlier_attempt(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    first = take(store, 16, complete=False, n=60)
    second = take(store, 16, complete=False, n=10)
    assert len(first.chunks) > len(second.chunks) == 1
    files = sorted(p.name for p in (tmp_path / "000000000016").iterdir())
    assert files == ["chunk-000000.bin", "pending.bin"]
    complete = store.complete(16, 0, sigs(16), b"[]")
    assert complete.chunks == second.chunks
    assert store.chunk(16, 0) == chunks_of(16, 10)[0]
    assert store.chunk(16, 1) is None


def test_damaged_manifest_is_not_served(tmp_path: Path) -> None:
    take(SnapshotStore(tmp_path, keep=2), 16)
    (tmp_path / "000000000016" / "manifest.bin").write_bytes(b"\x00garbage\xff")
    store = SnapshotStore(tmp_path, keep=2)  # nothing cached
    assert store.manifest(16) is None
    assert store.chunk(16, 0) is None
    assert store.newest_manifest() is None


def test_truncated_manifest_is_not_served(tmp_path: Path) -> None:
    written = take(SnapshotStore(tmp_path, keep=2), 16)
    path = tmp_path / "000000000016" / "manifest.bin"
    path.write_bytes(encode_manifest(written)[:-5])
    assert SnapshotStore(tmp_path, keep=2).manifest(16) is None
