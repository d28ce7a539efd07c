"""``epoch.attest`` on chain (node/ledger/domains/epoch_attest.py), the links a proof
takes from it (``links_through``) and the node's own submissions
(node/engine/epoch_attester.py): a validator of epoch e-1 signs epoch e once, a
quorum of those is what a proof carries, and the node submits exactly what is
missing, again only after its retry interval."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from node.core.epoch_link import verify_links
from node.core.keys import key_from_seed, public_key_hex, sign
from node.core.tx import Tx, build_tx
from node.engine.epoch_attester import EpochAttester
from node.ledger.domains.epoch_attest import (
    NotAttested,
    attestation_key,
    attestations_of,
    links_through,
    statement_of,
)
from node.ledger.executor import Ledger
from node.ledger.result import Rejection
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit import test_ledger_governance as gov
from tests.unit.test_ledger_validators import RULE, VChain, add_validator, remove_validator

NODE = [key_from_seed(hashlib.sha256(b"attest-node-%d" % i).digest()) for i in range(6)]


class AChain(VChain):
    """VChain whose genesis validators v0..v3 hold the real node keys NODE[0..3]."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.members = gov.founding(4)
        self.validators = [
            {"name": f"v{i}", "member": f"m{i}", "node_key": public_key_hex(NODE[i]),
             "p2p": f"10.0.0.{i}:26656"}
            for i in range(4)
        ]  # fmt: skip
        self.height = 0
        self.time = gov.T0
        self.root = b"\0" * 32
        self.ledger = Ledger()
        self.run()

    def state(self) -> BlockState:
        return BlockState(self.store)


def attest(chain: AChain, epoch: int, signer: int, *, by: int | None = None, **body: Any) -> Tx:
    """Node ``signer``'s epoch.attest of ``epoch``, its statement signed by node ``by``."""
    record = chain.epochs()[epoch]
    sig = sign(NODE[signer if by is None else by], statement_of(gov.CHAIN, record))
    full = {"epoch": epoch, "signature": sig.hex(), **body}
    return build_tx(gov.CHAIN, "epoch.attest", full, NODE[signer], epoch)


def add_node(i: int) -> dict[str, Any]:
    return {**add_validator(0), "node_key": public_key_hex(NODE[i]), "name": f"n{i}"}


def changed() -> AChain:
    chain = AChain()
    _, r = chain.passed(add_node(4))
    assert r.status == "ok" and r.data["epoch"] == 1, r
    return chain


def test_each_validator_of_the_previous_epoch_attests_once() -> None:
    chain = changed()
    r = chain.one(attest(chain, 1, 2))
    assert r.status == "ok" and r.data == {"epoch": 1, "validator": 2}, r
    stored = attestations_of(chain.state(), 1)
    assert [(a["validator"], a["node_key"], a["height"]) for a in stored] == [
        (2, public_key_hex(NODE[2]), chain.height)
    ]
    again = chain.one(_renonced(chain, 2))
    assert (again.status, again.code) == ("rejected", "already-attested"), again


def _renonced(chain: AChain, signer: int) -> Tx:
    """The same attestation under another nonce (another transaction hash)."""
    record = chain.epochs()[1]
    sig = sign(NODE[signer], statement_of(gov.CHAIN, record)).hex()
    return build_tx(gov.CHAIN, "epoch.attest", {"epoch": 1, "signature": sig}, NODE[signer], 99)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda c: attest(c, 1, 4), "not-a-validator"),  # the new validator: not in epoch 0
        (lambda c: attest(c, 1, 1, by=3), "bad-signature"),  # 3's signature, 1's tx
        (
            lambda c: build_tx(
                gov.CHAIN, "epoch.attest", {"epoch": 2, "signature": "00" * 64}, NODE[0], 2
            ),
            "unknown-epoch",
        ),
    ],
)
def test_refusals(make: Any, code: str) -> None:
    chain = changed()
    r = chain.one(make(chain))
    assert (r.status, r.code) == ("rejected", code), r
    assert attestations_of(chain.state(), 1) == []


def test_a_member_key_cannot_attest() -> None:
    chain = changed()
    record = chain.epochs()[1]
    sig = sign(gov.key(1), statement_of(gov.CHAIN, record)).hex()
    t = build_tx(gov.CHAIN, "epoch.attest", {"epoch": 1, "signature": sig}, gov.key(1), 1)
    with pytest.raises(Rejection, match="signer-not-allowed"):
        chain.ledger.check_signer(chain.store, t)


def test_links_need_a_quorum_and_verify_from_genesis() -> None:
    chain = changed()
    first = chain.epochs()[1].from_height
    assert links_through(chain.state(), first - 1) == []  # epoch 0's heights: no link
    chain.run(attest(chain, 1, 0), attest(chain, 1, 3))
    with pytest.raises(NotAttested, match="epoch 1 has 2 attestations on chain, a quorum is 3"):
        links_through(chain.state(), first)
    chain.one(attest(chain, 1, 1))
    chain.one(attest(chain, 1, 2))
    (link,) = links_through(chain.state(), first)
    assert [a["validator"] for a in link["attestations"]] == [0, 1, 2]  # a quorum, by index
    genesis = [bytes(k.verify_key) for k in NODE[:4]]
    epochs = verify_links(gov.CHAIN, genesis, [link])
    assert [e.n for e in epochs] == [4, 5] and epochs[1].first_height == first


def test_a_removed_validator_attests_the_set_without_it() -> None:
    chain = AChain()
    chain.passed(remove_validator(0) | {"node_key": public_key_hex(NODE[0])})
    assert len(chain.epochs()[1].validators) == 3
    r = chain.one(attest(chain, 1, 0))
    assert r.status == "ok", r


def test_the_attester_submits_what_is_missing_once_per_retry() -> None:
    chain = changed()
    sent: list[Tx] = []
    node2 = EpochAttester(gov.CHAIN, NODE[2], sent.append, retry_ms=1_000)
    newcomer = EpochAttester(gov.CHAIN, NODE[4], sent.append, retry_ms=1_000)
    assert newcomer.tick(chain.state(), 1, 0) == []  # not in epoch 0: nothing to attest
    (tx,) = node2.tick(chain.state(), 1, 0)
    assert sent == [tx] and tx.body["epoch"] == 1
    assert node2.tick(chain.state(), 1, 999) == []  # not again before the retry interval
    (again,) = node2.tick(chain.state(), 1, 1_000)
    assert again.hash == tx.hash  # the same transaction: deterministic
    assert chain.one(tx).status == "ok"
    assert node2.tick(chain.state(), 1, 5_000) == []  # on chain now: settled
    assert chain.state().get(attestation_key(1, 2)) is not None
    assert node2.tick(chain.state(), 1, 9_000) == [] and len(sent) == 2


def test_the_epoch_rule_places_the_attested_first_height() -> None:
    """The statement carries the height the rule chose, so a link names the same
    first height ``/v1/validators`` shows."""
    chain = changed()
    record = chain.epochs()[1]
    assert record.from_height == RULE.first_height(record.committed_height)
    statement = json.loads(statement_of(gov.CHAIN, record))
    assert statement["first_height"] == record.from_height and statement["epoch"] == 1
    assert statement["validators"] == [v.node_key for v in record.validators]
