"""Deterministic fake blocks for the chain-store tests (and their kill -9 child process):
block ``h``'s hash, bytes, transaction hashes and state writes derive from ``h`` alone,
so a test can check a store holds blocks 1..tip whole after any crash."""

from __future__ import annotations

import hashlib

from storage import ChainStorage


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
