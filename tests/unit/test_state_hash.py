"""The state commitment (node/ledger/state_hash.py) and the state root over it
(node/ledger/state.py): the LtHash kept per block equals the hash of the whole
state computed from scratch, does not depend on order or on how the state is cut
into parts, and the root of a height changes with any entry of the state."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest

from node.core.state_root import BlockDigests, chain_state_root
from node.ledger.state import writes_digest
from node.ledger.state_hash import EMPTY, STATE_HASH_BYTES, STATE_HASH_KEY, StateHash
from storage.memory import MemoryChainStore
from tests.unit.test_ledger_validators import VChain


def entries(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [(b"k/%06d" % i, rng.randbytes(rng.randrange(0, 200))) for i in range(n)]


def test_order_and_parts_do_not_matter() -> None:
    items = entries(300)
    whole = StateHash.of(items)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert StateHash.of(shuffled) == whole
    parts = [StateHash.of(items[i : i + 64]) for i in range(0, len(items), 64)]
    total = EMPTY
    for part in parts:
        total = total + part
    assert total == whole
    assert StateHash.of([]) == EMPTY and whole != EMPTY


def test_updates_match_a_fresh_computation() -> None:
    state = dict(entries(100))
    h = StateHash.of(state.items())
    rng = random.Random(3)
    for _ in range(200):
        key = b"k/%06d" % rng.randrange(140)  # some new keys, some existing
        old = state.get(key)
        new = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(1, 50))
        h = h.updated([(key, old, new)])
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        assert h == StateHash.of(state.items())


def test_any_change_of_one_entry_changes_the_hash() -> None:
    items = entries(50)
    base = StateHash.of(items)
    changed_value = [*items[:10], (items[10][0], items[10][1] + b"x"), *items[11:]]
    changed_key = [*items[:10], (b"k/x", items[10][1]), *items[11:]]
    dropped = items[:10] + items[11:]
    duplicated = [*items, items[0]]
    for other in (changed_value, changed_key, dropped, duplicated):
        assert StateHash.of(other) != base


def test_bytes_and_state_value_round_trip() -> None:
    h = StateHash.of(entries(20))
    assert len(h.to_bytes()) == STATE_HASH_BYTES
    assert StateHash.from_bytes(h.to_bytes()) == h
    assert StateHash.from_state_value(h.to_state_value()) == h
    assert StateHash.from_state_value(None) == EMPTY
    with pytest.raises(ValueError):
        StateHash.from_bytes(b"\0" * 10)


def test_the_root_chains_history_and_covers_content_and_results() -> None:
    prev = hashlib.sha256(b"prev").digest()
    writes: list[tuple[bytes, bytes | None]] = [(b"a", b"1"), (b"b", None)]
    content = StateHash.of([(b"a", b"1")]).digest()
    results = hashlib.sha256(b"results").digest()
    digests = BlockDigests(writes_digest(writes), content, results)
    root = chain_state_root(prev, 5, digests)
    assert BlockDigests.from_bytes(digests.to_bytes()) == digests
    assert chain_state_root(prev, 5, replace(digests, content=EMPTY.digest())) != root
    assert chain_state_root(prev, 5, replace(digests, results=bytes(32))) != root
    assert chain_state_root(prev, 6, digests) != root
    assert chain_state_root(b"\0" * 32, 5, digests) != root
    with pytest.raises(ValueError):
        BlockDigests(b"short", content, results)


def test_the_executor_keeps_the_hash_of_the_whole_state() -> None:
    """After blocks of governance and validator changes, ``meta/state-hash`` is the
    LtHash of every other entry of the state, computed from scratch."""
    chain = VChain()
    chain.passed({"type": "remove-validator", "node_key": chain.validators[3]["node_key"]})
    chain.run_to(chain.height + 5)
    store: MemoryChainStore = chain.store
    everything = list(store.state_iter(b""))
    kept = StateHash.from_state_value(store.state_get(STATE_HASH_KEY))
    assert kept == StateHash.of(everything)
    assert kept != EMPTY
