"""The mempool's admission checks, gossip queue and removal on commit (``node.mempool``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.mempool import Mempool, MempoolError, MempoolLimits


@dataclass(frozen=True)
class FakeTx:
    hash: str
    signer: str
    wire: bytes


def tx(n: int, signer: str = "a", size: int = 10) -> FakeTx:
    return FakeTx(f"{n:064x}", signer, bytes(size))


def pool(committed: set[str] | None = None, **limits: int) -> Mempool:
    done = committed if committed is not None else set()
    return Mempool(MempoolLimits(**limits), is_committed=done.__contains__)


def rejected_code(mp: Mempool, t: FakeTx) -> tuple[str, int]:
    with pytest.raises(MempoolError) as info:
        mp.add(t, 0)
    return info.value.code, info.value.http_status


def test_admits_once_and_counts_size() -> None:
    mp = pool()
    assert mp.add(tx(1, size=7), 5) is True
    assert mp.add(tx(1, size=7), 6) is False  # a duplicate is not an error
    assert len(mp) == 1 and tx(1).hash in mp
    assert mp.total_bytes == 7
    assert mp.oldest_age_ms(15) == 10
    assert mp.rejected == {}


def test_holds_only_the_very_same_bytes() -> None:
    """Same hash, other bytes (another signature): not held, so the caller must
    check that copy's signature instead of answering it as a duplicate."""
    mp = pool()
    mp.add(tx(1), 0)
    assert mp.holds(tx(1))
    assert not mp.holds(FakeTx(tx(1).hash, "a", b"\x01" * 10))
    assert not mp.holds(tx(2))


def test_refusals_have_stable_codes_and_are_counted() -> None:
    mp = pool({tx(9).hash}, max_txs=2, max_tx_bytes=100, per_signer_max=1)
    assert rejected_code(mp, tx(1, size=101)) == ("too-large", 413)
    assert rejected_code(mp, tx(9)) == ("replay", 400)
    mp.add(tx(1, "a"), 0)
    assert rejected_code(mp, tx(2, "a")) == ("signer-quota", 503)
    mp.add(tx(3, "b"), 0)
    assert rejected_code(mp, tx(4, "c")) == ("mempool-full", 503)
    assert mp.rejected == {"too-large": 1, "replay": 1, "signer-quota": 1, "mempool-full": 1}


def test_byte_capacity() -> None:
    mp = pool(max_bytes=25)
    mp.add(tx(1, size=20), 0)
    assert rejected_code(mp, tx(2, "b", size=6)) == ("mempool-full", 503)
    mp.add(tx(3, "b", size=5), 0)
    assert mp.total_bytes == 25


def test_remove_committed_frees_count_bytes_and_signer_share() -> None:
    mp = pool(per_signer_max=2)
    for n in (1, 2):
        mp.add(tx(n, "a"), n)
    assert mp.remove_committed([tx(1).hash, tx(7).hash]) == 1
    assert len(mp) == 1 and mp.total_bytes == 10
    assert mp.oldest_age_ms(10) == 8
    mp.add(tx(3, "a"), 3)  # the signer's share has room again
    assert [t.hash for t in mp.pending()] == [tx(2).hash, tx(3).hash]


def test_gossip_queue_takes_each_admitted_tx_once_and_skips_removed() -> None:
    mp = pool()
    mp.add(tx(1), 0)
    mp.add(tx(2), 0, gossip=False)
    mp.add(tx(3), 0)
    mp.add(tx(1), 0)  # a duplicate is not queued again
    mp.remove_committed([tx(3).hash])
    assert [t.hash for t in mp.take_gossip()] == [tx(1).hash]
    assert mp.take_gossip() == []
