"""The validator set as ledger state (node/ledger/validators.py): epoch 0 from genesis,
the epoch records, the schedule consensus reads, ``BlockApplier.epoch_schedule``."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from consensus.epochs import Epoch, EpochSchedule, boundary
from node.core.codec import canonical_json
from node.core.tx import TxPayloadRules
from node.engine.applier import BlockApplier
from node.ledger.context import BlockInfo
from node.ledger.executor import Ledger
from node.ledger.state import BlockState
from node.ledger.validators import (
    EpochRecord,
    EpochRule,
    ValidatorEntry,
    epoch_at,
    epoch_key,
    genesis_epoch,
    latest_epoch,
    load_epochs,
    put_epoch,
    to_schedule,
)
from node.setup.genesis import default_consensus_params, parse_genesis
from storage.memory import MemoryChainStore
from tests.unit.chain_helpers import make_committed
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "val-chain"
NODE_KEYS = [hashlib.sha256(b"node-%d" % i).hexdigest() for i in range(4)]


def validators_json(n: int = 4) -> list[dict[str, Any]]:
    return [
        {"name": f"node{i}", "member": f"m{i}", "node_key": NODE_KEYS[i], "p2p": f"10.0.0.{i}:1"}
        for i in range(n)
    ]


def members_json(n: int = 4) -> list[dict[str, Any]]:
    return [
        {"id": f"m{i}", "name": f"M{i}", "roles": ["hospital"], "keys": [f"{i + 1:064x}"]}
        for i in range(n)
    ]


def test_block_1_writes_epoch_0_from_genesis_validators() -> None:
    """Block 1 writes genesis's validators as epoch 0 (from height 1, no proposal) with the
    founding members, under epoch/0000000000, as canonical JSON."""
    store = MemoryChainStore()
    block = BlockInfo(CHAIN, 1, 1_000, 0)
    out = execute_and_commit(
        store, Ledger(), block, [], b"\0" * 32, members_json(), validators_json()
    )
    expected = {
        "epoch": 0,
        "from_height": 1,
        "validators": validators_json(),
        "proposal": None,
        "committed_height": 0,
    }
    assert (b"epoch/0000000000", canonical_json(expected)) in out.writes
    assert store.state_get(epoch_key(0)) == canonical_json(expected)
    (record,) = load_epochs(BlockState(store))
    assert record == genesis_epoch(validators_json())
    assert record.to_json() == expected
    assert record.validators[2] == ValidatorEntry("node2", "m2", NODE_KEYS[2], "10.0.0.2:1")
    # a later block writes no epoch again
    out2 = execute_and_commit(
        store, Ledger(), BlockInfo(CHAIN, 2, 2_000, 0), [], out.state_root, members_json()
    )
    assert not any(k.startswith(b"epoch/") for k, _ in out2.writes)


def test_epoch_0_is_part_of_the_state_root() -> None:
    """Two genesis validator lists give two state roots at block 1."""
    roots = []
    for vals in (validators_json(4), validators_json(3)):
        out = execute_and_commit(
            MemoryChainStore(), Ledger(), BlockInfo(CHAIN, 1, 1_000, 0), [], b"\0" * 32, [], vals
        )
        roots.append(out.state_root)
    assert roots[0] != roots[1]


def test_records_load_in_number_order_and_make_the_schedule() -> None:
    """Epoch keys are zero-padded (epoch 10 sorts after 9); the schedule has byte keys."""
    store = MemoryChainStore()
    state = BlockState(store)
    base = genesis_epoch(validators_json())
    put_epoch(state, base)
    for number in range(1, 12):
        vals = base.validators[: 1 + number % 4]
        put_epoch(state, EpochRecord(number, 100 * number + 1, vals, f"{number:064x}", 10 * number))
    records = load_epochs(state)
    assert [r.epoch for r in records] == list(range(12))
    latest = latest_epoch(state)
    assert latest is not None and latest.epoch == 11
    schedule = to_schedule(records)
    assert isinstance(schedule, EpochSchedule)
    assert schedule.epochs[0] == Epoch(0, 1, tuple(bytes.fromhex(k) for k in NODE_KEYS))
    assert schedule.epochs[10].first_height == 1001
    assert schedule.at(1000).number == 9 and schedule.at(1001).number == 10
    assert [epoch_at(records, h).epoch for h in (0, 1, 100, 101, 5000)] == [0, 0, 0, 1, 11]
    assert latest_epoch(BlockState(MemoryChainStore())) is None


@pytest.mark.parametrize(
    ("k", "window", "height", "first"),
    [(16, 32, 1, 49), (16, 32, 16, 49), (16, 32, 17, 65), (5, 10, 3, 16), (5, 10, 5, 16)],
)
def test_epoch_rule_is_the_boundary_of_consensus_epochs(
    k: int, window: int, height: int, first: int
) -> None:
    """first_height(h) = boundary(h) + 1: one above the first checkpoint >= h + window."""
    rule = EpochRule(k, window)
    assert rule.first_height(height) == first == boundary(height, k, window) + 1
    assert (first - 1) % k == 0 and first - 1 >= height + window


def test_genesis_gives_its_epoch_rule() -> None:
    doc = {
        "chain_id": CHAIN,
        "genesis_time": 0,
        "consensus": {**default_consensus_params(), "checkpoint_interval": 8},
        "validators": validators_json(1),
        "members": members_json(1),
    }
    genesis = parse_genesis(doc)
    assert genesis.epoch_rule() == EpochRule(8, default_consensus_params()["watermark_window"])


def test_applier_epoch_schedule_reads_the_committed_state() -> None:
    """Before block 1: genesis's set; after it: epoch 0 as block 1 wrote it; a later
    epoch in the state shows up in the schedule."""
    keys = [hashlib.sha256(b"validator-%d" % i).digest() for i in range(4)]
    vals = [
        {"name": f"v{i}", "member": "m0", "node_key": k.hex(), "p2p": f"10.0.0.{i}:1"}
        for i, k in enumerate(keys)
    ]
    doc = {
        "chain_id": "hygeia-test",
        "genesis_time": 0,
        "consensus": default_consensus_params(),
        "validators": vals,
        "members": members_json(1),
    }
    genesis = parse_genesis(doc)
    store = MemoryChainStore()
    applier = BlockApplier(store, genesis, Ledger(), TxPayloadRules(genesis.chain_id))
    assert applier.epoch_schedule() == EpochSchedule.genesis(keys)
    applier.apply(make_committed([], height=1))
    assert store.state_get(epoch_key(0)) is not None
    assert applier.epoch_schedule() == EpochSchedule.genesis(keys)
    state = BlockState(store)
    put_epoch(
        state,
        EpochRecord(1, 65, genesis_epoch(vals).validators[:3], "ab" * 32, 1),
    )
    store.commit_block(2, b"\2" * 32, b"block", [], state.writes())
    assert applier.epoch_schedule() == EpochSchedule.genesis(keys).with_epoch(
        Epoch(1, 65, tuple(keys[:3]))
    )
