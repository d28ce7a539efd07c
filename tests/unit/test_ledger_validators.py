"""The validator set as ledger state (node/ledger/validators.py): epoch 0 from genesis,
the epoch records, the schedule consensus reads, ``BlockApplier.epoch_schedule``."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from consensus.epochs import Epoch, EpochSchedule, boundary
from node.core.codec import canonical_json
from node.core.tx import Tx, TxPayloadRules
from node.engine.applier import BlockApplier
from node.ledger.context import BlockInfo
from node.ledger.domains.governance import DOMAIN as GOV_DOMAIN
from node.ledger.domains.governance import threshold
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
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
from tests.unit import test_ledger_governance as gov
from tests.unit.chain_helpers import make_committed
from tests.unit.ledger_helpers import execute_and_commit, run_query

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


# ------------------------------------------------------------------ governance: validator changes
# (gov.propose / gov.vote with the actions add-validator, remove-validator and
# replace-validator-key; node/ledger/domains/governance.py)

RULE = EpochRule(checkpoint_interval=5, watermark_window=10)


def nk(i: int) -> str:
    """Node key i (64 hex): not a member's signing key."""
    return hashlib.sha256(b"node-key-%d" % i).hexdigest()


class VChain:
    """A governance chain whose genesis has ``n_validators`` validators v0.. run by
    members m0.. in turn (member i signs with key i + 1)."""

    def __init__(self, n_members: int = 4, n_validators: int = 4) -> None:
        self.store = MemoryChainStore()
        self.members = gov.founding(n_members)
        self.validators = [
            {
                "name": f"v{i}",
                "member": f"m{i % n_members}",
                "node_key": nk(i),
                "p2p": f"10.0.{i // 250}.{i % 250}:26656",
            }
            for i in range(n_validators)
        ]
        self.height = 0
        self.time = gov.T0
        self.root = b"\0" * 32
        self.ledger = Ledger()
        self.run()  # block 1: founding members and epoch 0

    def run(self, *txs: Tx) -> list[TxResult]:
        self.height += 1
        self.time += 1_000
        block = BlockInfo(gov.CHAIN, self.height, self.time, 0)
        out = execute_and_commit(
            self.store, self.ledger, block, txs, self.root, self.members, self.validators, RULE
        )
        self.root = out.state_root
        return out.results

    def one(self, t: Tx) -> TxResult:
        return self.run(t)[0]

    def run_to(self, height: int) -> None:
        """Empty blocks until the chain's tip is ``height`` - 1 (the next block is ``height``)."""
        while self.height < height - 1:
            self.run()

    def epochs(self) -> list[EpochRecord]:
        return load_epochs(BlockState(self.store))

    def proposal(self, proposal_id: str) -> Any:
        return run_query(
            GOV_DOMAIN,
            BlockState(self.store),
            "/proposals/{proposal_id}",
            {"proposal_id": proposal_id},
        )

    def propose(self, action: dict[str, Any], signer: int = 1) -> tuple[Tx, TxResult]:
        p = gov.propose(action, signer=signer)
        return p, self.one(p)

    def approve(self, proposal_id: str, n_active: int = 4, first: int = 2) -> TxResult:
        """Votes of keys first.. until the threshold of ``n_active`` members (with the
        proposer's), in one block; the result of the last vote."""
        need = threshold(n_active) - 1
        return self.run(*[gov.vote(proposal_id, s) for s in range(first, first + need)])[-1]

    def passed(self, action: dict[str, Any]) -> tuple[str, TxResult]:
        """Propose (key 1) and approve in the next block: (proposal id, last vote's result)."""
        p, r = self.propose(action)
        assert r.status == "ok", r
        return p.hash, self.approve(p.hash)


def add_validator(i: int, member: str = "m1", name: str = "") -> dict[str, Any]:
    return {
        "type": "add-validator",
        "member": member,
        "name": name or f"new{i}",
        "node_key": nk(i),
        "p2p": f"new{i}.example:26656",
    }


def remove_validator(i: int) -> dict[str, Any]:
    return {"type": "remove-validator", "node_key": nk(i)}


def replace_key(i: int, new: int) -> dict[str, Any]:
    return {
        "type": "replace-validator-key",
        "node_key": nk(i),
        "new_node_key": nk(new),
        "p2p": "[2001:db8::7]:26656",
    }


def keys_of(record: EpochRecord) -> list[str]:
    return [v.node_key for v in record.validators]


def test_add_validator_appends_and_takes_effect_at_the_boundary() -> None:
    """add-validator executed at height H writes epoch 1 = epoch 0 + the new validator at
    the end, from boundary(H) + 1, naming the proposal and H."""
    chain = VChain()
    pid, r = chain.passed(add_validator(10))
    h = chain.height  # the vote's block executed it
    first = boundary(h, 5, 10) + 1
    assert (h, first) == (3, 16)
    assert r.status == "ok" and r.data["status"] == "executed"
    assert (r.data["epoch"], r.data["from_height"]) == (1, first)
    e0, e1 = chain.epochs()
    assert e0 == genesis_epoch(chain.validators)
    assert e1.to_json() == {
        "epoch": 1,
        "from_height": first,
        "validators": [*chain.validators, {"name": "new10", "member": "m1",
                       "node_key": nk(10), "p2p": "new10.example:26656"}],
        "proposal": pid,
        "committed_height": h,
    }  # fmt: skip
    assert chain.store.state_get(epoch_key(1)) == canonical_json(e1.to_json())
    schedule = to_schedule(chain.epochs())
    assert schedule.at(first - 1).number == 0 and schedule.at(first).number == 1
    assert schedule.at(first).index_of(bytes.fromhex(nk(10))) == 4


def test_remove_validator_deletes_the_entry_and_later_ones_move_up() -> None:
    chain = VChain()
    chain.run_to(20)  # executes at a height that is not the first block
    pid, r = chain.passed(remove_validator(1))
    h = chain.height
    assert r.data["status"] == "executed" and r.data["from_height"] == boundary(h, 5, 10) + 1
    latest = chain.epochs()[-1]
    assert (latest.epoch, latest.proposal, latest.committed_height) == (1, pid, h)
    assert [v.name for v in latest.validators] == ["v0", "v2", "v3"]
    assert keys_of(latest) == [nk(0), nk(2), nk(3)]
    assert to_schedule(chain.epochs()).latest.index_of(bytes.fromhex(nk(2))) == 1


def test_replace_validator_key_keeps_position_name_and_member() -> None:
    chain = VChain()
    chain.passed(replace_key(2, 20))
    latest = chain.epochs()[-1]
    assert latest.validators[2] == ValidatorEntry("v2", "m2", nk(20), "[2001:db8::7]:26656")
    assert latest.validators[:2] == genesis_epoch(chain.validators).validators[:2]
    assert latest.validators[3] == genesis_epoch(chain.validators).validators[3]


def test_a_second_change_waits_until_the_first_is_in_force() -> None:
    """While the latest epoch's from_height > H a validator action is refused at proposal
    (change-in-flight); at H = from_height it is accepted and makes epoch 2."""
    chain = VChain()
    chain.passed(add_validator(10))
    first = chain.epochs()[-1].from_height
    chain.run_to(first - 1)
    _, r = chain.propose(remove_validator(0))  # executes at first - 1: still in flight
    assert (r.status, r.code) == ("rejected", "change-in-flight")
    assert chain.height == first - 1
    pid, r = chain.passed(remove_validator(0))  # proposed at first: in force
    assert chain.height == first + 1 and r.data["status"] == "executed"
    e2 = chain.epochs()[-1]
    assert (e2.epoch, e2.proposal, e2.committed_height) == (2, pid, first + 1)
    assert e2.from_height == boundary(first + 1, 5, 10) + 1
    assert keys_of(e2) == [nk(1), nk(2), nk(3), nk(10)]
    # a member change is not a validator change: never in flight
    _, r = chain.propose(add_validator(11))
    assert r.code == "change-in-flight"
    _, r = chain.propose({"type": "suspend-member", "id": "m3"})
    assert r.status == "ok"


def test_a_change_that_passes_while_another_is_in_flight_fails() -> None:
    """Two validator proposals open at once: the first to pass executes, the second
    closes as failed (change-in-flight) when it passes, and nothing else changes."""
    chain = VChain()
    a, ra = chain.propose(add_validator(10))
    b, rb = chain.propose(remove_validator(3), signer=2)
    assert ra.status == rb.status == "ok"
    chain.approve(a.hash)
    r = chain.run(gov.vote(b.hash, 1), gov.vote(b.hash, 3))[-1]
    assert r.status == "ok" and r.data["status"] == "failed"
    assert "epoch" not in r.data
    reason = chain.proposal(b.hash)["reason"]
    assert reason.startswith("change-in-flight: epoch 1 (proposal " + a.hash), reason
    assert [e.epoch for e in chain.epochs()] == [0, 1]


def _refused(chain: VChain, action: dict[str, Any], code: str) -> None:
    before = chain.epochs()
    _, r = chain.propose(action)
    assert (r.status, r.code) == ("rejected", code), r
    assert chain.epochs() == before


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (remove_validator(9), "unknown-validator"),
        (replace_key(9, 20), "unknown-validator"),
        (add_validator(2), "key-taken"),
        (replace_key(1, 2), "key-taken"),
        (replace_key(1, 1), "key-taken"),
        (add_validator(10, member="nobody"), "unknown-member"),
    ],
)
def test_invalid_validator_actions_are_refused_at_proposal(
    action: dict[str, Any], code: str
) -> None:
    _refused(VChain(), action, code)


def test_last_validator_not_active_too_many_and_in_flight_at_proposal() -> None:
    _refused(VChain(n_validators=1), remove_validator(0), "last-validator")
    chain = VChain()
    chain.passed({"type": "suspend-member", "id": "m3"})
    _refused(chain, add_validator(10, member="m3"), "not-active")
    _refused(VChain(n_validators=64), add_validator(100), "too-many-validators")
    chain = VChain(n_validators=63)
    chain.passed(add_validator(100))
    assert len(chain.epochs()[-1].validators) == 64
    _refused(chain, add_validator(101), "change-in-flight")
    chain.run_to(chain.epochs()[-1].from_height)
    _refused(chain, add_validator(101), "too-many-validators")


def _fails_at_execution(chain: VChain, proposal_id: str, code: str, n_active: int = 4) -> None:
    """Approve an open proposal: it closes as failed with ``code`` and no epoch is written."""
    before = chain.epochs()
    votes = chain.proposal(proposal_id)["votes"]
    voters = [i + 1 for i in range(n_active) if f"m{i}" not in votes]
    need = threshold(n_active) - len(votes)
    r = chain.run(*[gov.vote(proposal_id, s) for s in voters[:need]])[-1]
    assert r.status == "ok" and r.data["status"] == "failed", r
    assert chain.proposal(proposal_id)["reason"].startswith(code + ": ")
    assert chain.epochs() == before


def test_refusals_at_execution_close_the_proposal_as_failed() -> None:
    """Each refusal that state can bring about between proposal and execution."""
    # key-taken: another proposal made the same key a validator meanwhile
    chain = VChain()
    b, _ = chain.propose(add_validator(10, name="later"), signer=2)
    chain.passed(add_validator(10))
    chain.run_to(chain.epochs()[-1].from_height)
    _fails_at_execution(chain, b.hash, "key-taken")
    # unknown-validator: removed meanwhile
    chain = VChain()
    b, _ = chain.propose(replace_key(3, 20), signer=2)
    chain.passed(remove_validator(3))
    chain.run_to(chain.epochs()[-1].from_height)
    _fails_at_execution(chain, b.hash, "unknown-validator")
    # last-validator: the other one was removed meanwhile
    chain = VChain(n_validators=2)
    b, _ = chain.propose(remove_validator(1), signer=2)
    chain.passed(remove_validator(0))
    chain.run_to(chain.epochs()[-1].from_height)
    _fails_at_execution(chain, b.hash, "last-validator")
    # too-many-validators: the 64th was added meanwhile
    chain = VChain(n_validators=63)
    b, _ = chain.propose(add_validator(101), signer=2)
    chain.passed(add_validator(100))
    chain.run_to(chain.epochs()[-1].from_height)
    _fails_at_execution(chain, b.hash, "too-many-validators")
    # not-active: the member was suspended meanwhile (3 active members then)
    chain = VChain()
    b, _ = chain.propose(add_validator(10, member="m3"), signer=2)
    chain.passed({"type": "suspend-member", "id": "m3"})
    _fails_at_execution(chain, b.hash, "not-active", n_active=3)
    # change-in-flight: another change passed first (and is not in force yet)
    chain = VChain()
    b, _ = chain.propose(remove_validator(2), signer=2)
    chain.passed(add_validator(10))
    _fails_at_execution(chain, b.hash, "change-in-flight")


def test_unknown_member_is_refused_at_proposal_only() -> None:
    """Members are never deleted, so an add-validator's member that existed at proposal
    exists at execution: unknown-member is a proposal-time refusal."""
    chain = VChain()
    _refused(chain, add_validator(10, member="clinic-9"), "unknown-member")


@pytest.mark.parametrize(
    ("action", "where"),
    [
        ({**add_validator(10), "p2p": "no-port"}, "body.action.p2p"),
        ({**add_validator(10), "p2p": "10.0.0.1:0"}, "body.action.p2p"),
        ({**add_validator(10), "p2p": "[::1]"}, "body.action.p2p"),
        ({**add_validator(10), "node_key": nk(10).upper()}, "body.action.node_key"),
        ({**add_validator(10), "name": "has space"}, "body.action.name"),
        ({**add_validator(10), "member": ""}, "body.action.member"),
        ({**add_validator(10), "power": 1}, "body.action.power"),
        ({"type": "remove-validator"}, "body.action.node_key"),
        ({**replace_key(1, 20), "new_node_key": "ab"}, "body.action.new_node_key"),
        ({"type": "replace-validator-key", "node_key": nk(1), "new_node_key": nk(2)},
         "body.action.p2p"),
    ],
)  # fmt: skip
def test_malformed_validator_actions_name_the_field(action: dict[str, Any], where: str) -> None:
    t = gov.propose(action)
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(t)
    assert err.value.code == "malformed" and where in err.value.message, err.value.message
    r = VChain().one(t)
    assert (r.status, r.code) == ("rejected", "malformed")


def _validator_workload(chain: VChain) -> list[bytes]:
    roots = [chain.root]
    a, _ = chain.propose(add_validator(10))
    b, _ = chain.propose(remove_validator(0), signer=2)
    roots.append(chain.root)
    chain.approve(a.hash)
    chain.run(gov.vote(b.hash, 1), gov.vote(b.hash, 3))  # fails: change-in-flight
    roots.append(chain.root)
    chain.run_to(chain.epochs()[-1].from_height)
    chain.passed(replace_key(1, 21))
    roots.append(chain.root)
    return roots


def test_validator_changes_are_deterministic() -> None:
    """Two ledgers executing the same validator changes reach the same roots and epochs."""
    seed = gov._nonce[0]
    a = VChain()
    roots_a = _validator_workload(a)
    gov._nonce[0] = seed  # the very same transactions again
    b = VChain()
    roots_b = _validator_workload(b)
    assert roots_a == roots_b and len(set(roots_a)) == len(roots_a)
    assert a.epochs() == b.epochs()
    assert [e.epoch for e in a.epochs()] == [0, 1, 2]
