"""The ledger framework with data.anchor: schema, authorisation, replay, savepoints, roots."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from node.core.codec import parse_json
from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.executor import Ledger, result_key
from node.ledger.result import Rejection
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "test-chain"
MEMBER_KEY = key_from_seed(b"\x01" * 32)
OUTSIDER_KEY = key_from_seed(b"\x02" * 32)
MEMBERS = [
    {
        "id": "h1",
        "name": "Hospital One",
        "roles": ["hospital"],
        "keys": [public_key_hex(MEMBER_KEY)],
    }
]


def anchor_tx(digest: str, nonce: int = 0, key: Any = MEMBER_KEY, **extra: Any) -> Tx:
    return build_tx(CHAIN, "data.anchor", {"digest": digest, **extra}, key, nonce)


def digest(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def run_block(store: MemoryChainStore, height: int, txs: list[Tx], prev: bytes = b"\0" * 32):
    block = BlockInfo(CHAIN, height, 1_000 * height, 0)
    return execute_and_commit(store, Ledger(), block, txs, prev, MEMBERS)


def test_member_anchor_is_ok_and_queryable() -> None:
    """A member's anchor commits with ok, and the state records who and when."""
    store = MemoryChainStore()
    tx = anchor_tx(digest(1), kind="lab-report")
    out = run_block(store, 1, [tx])
    assert out.results[0].status == "ok"
    record = parse_json(store.state_get(b"anchor/" + digest(1).encode()) or b"null")
    assert record["member"] == "h1" and record["height"] == 1 and record["kind"] == "lab-report"


def test_unauthorised_signer_is_rejected_without_state_change() -> None:
    """A key of no member is rejected as unauthorized; only its result is recorded."""
    store = MemoryChainStore()
    tx = anchor_tx(digest(2), key=OUTSIDER_KEY)
    out = run_block(store, 1, [tx])
    assert (out.results[0].status, out.results[0].code) == ("rejected", "unauthorized")
    assert store.state_get(b"anchor/" + digest(2).encode()) is None
    assert parse_json(store.state_get(result_key(tx.hash)) or b"null")["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"digest": "XYZ"}, "body.digest"),
        ({"digest": digest(3), "kind": "x" * 65}, "body.kind"),
        ({"digest": digest(3), "patient_name": "Jane"}, "body.patient_name"),
        ({}, "body.digest"),
    ],
)
def test_malformed_body_is_refused_with_its_path(body: dict[str, Any], where: str) -> None:
    """Schema errors name the field; unknown fields (a way to smuggle PHI) are refused."""
    tx = build_tx(CHAIN, "data.anchor", body, MEMBER_KEY, 0)
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx)
    assert err.value.code == "malformed" and where in err.value.message


def test_replay_in_a_later_block_and_in_the_same_block_is_rejected() -> None:
    """The same transaction hash is rejected as a replay, in the block and later."""
    store = MemoryChainStore()
    tx = anchor_tx(digest(4))
    out1 = run_block(store, 1, [tx, tx])
    assert [r.code for r in out1.results] == ["ok", "replay"]
    out2 = run_block(store, 2, [tx], out1.state_root)
    assert out2.results[0].code == "replay"


def test_second_anchor_of_a_digest_is_rejected_and_rolled_back() -> None:
    """First anchor wins; the second is rejected and changes nothing but its result."""
    store = MemoryChainStore()
    a, b = anchor_tx(digest(5), nonce=1), anchor_tx(digest(5), nonce=2)
    out = run_block(store, 1, [a, b])
    assert [r.code for r in out.results] == ["ok", "already-anchored"]
    record = parse_json(store.state_get(b"anchor/" + digest(5).encode()) or b"null")
    assert record["tx"] == a.hash


def test_unknown_type_is_refused() -> None:
    """A transaction type the ledger does not know is refused at admission."""
    tx = build_tx(CHAIN, "data.erase", {"digest": digest(6)}, MEMBER_KEY, 0)
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx)
    assert err.value.code == "unknown-type"


def test_state_root_is_deterministic_and_depends_on_the_writes() -> None:
    """Two stores executing the same blocks reach the same roots; other txs, other root."""
    roots = []
    for _ in range(2):
        store = MemoryChainStore()
        out1 = run_block(store, 1, [anchor_tx(digest(i), nonce=i) for i in range(5)])
        out2 = run_block(store, 2, [anchor_tx(digest(9), nonce=9)], out1.state_root)
        roots.append((out1.state_root, out2.state_root))
    assert roots[0] == roots[1]
    other = MemoryChainStore()
    out = run_block(other, 1, [anchor_tx(digest(i), nonce=i) for i in range(4)])
    assert out.state_root != roots[0][0]
