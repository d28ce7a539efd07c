"""Inclusion proofs: a good proof verifies offline; every tampered variant fails with a reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from node.core.block import GENESIS_PARENT_HASH, derive_block
from node.core.keys import key_from_seed
from node.core.proof import PROOF_FORMAT, ProofError, build_proof, verify_proof
from node.core.tx import build_tx
from tests.unit.chain_helpers import (
    CHAIN,
    EXAMPLE_VALIDATOR,
    PUBKEYS,
    STATE_ROOT,
    example_block,
    make_block,
    make_committed,
    make_txs,
)

ATTACKER = key_from_seed(b"\x66" * 32)


def good_proof(n_txs: int = 6, index: int = 3, **kw: Any) -> dict[str, Any]:
    proof = build_proof(make_block(n_txs, **kw), index)
    # everything goes through JSON text, as it would over HTTP or in a file
    loaded: dict[str, Any] = json.loads(json.dumps(proof))
    return loaded


def test_verify_ok() -> None:
    block = make_block(6, timestamp=1_767_225_600_123, view=1, signers=(3, 0, 2))
    proof = json.loads(json.dumps(build_proof(block, 3)))
    assert proof["format"] == PROOF_FORMAT
    result = verify_proof(proof, CHAIN, PUBKEYS)
    assert result.tx_hash == block.tx_hashes[3].hex()
    assert result.height == 1 and result.index == 3 and result.view == 1
    assert result.timestamp == 1_767_225_600_123
    assert result.block_hash == block.hash
    assert result.validators == (0, 2, 3)
    assert result.tx_type == "data.anchor"
    assert result.statement() == (
        f"transaction {result.tx_hash} was committed at height 1 at time "
        "1767225600123 (2026-01-01T00:00:00.123Z) by validators [0, 2, 3]"
    )
    assert result.to_json()["time"] == "2026-01-01T00:00:00.123Z"
    # genesis keys may be given as hex too
    assert verify_proof(proof, CHAIN, [k.hex() for k in PUBKEYS]) == result


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 9])
def test_every_index_of_every_tree_shape(size: int) -> None:
    block = make_block(size)
    for i in range(size):
        assert verify_proof(build_proof(block, i), CHAIN, PUBKEYS).index == i


def test_build_proof_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        build_proof(make_block(2), 2)


Tamper = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Tamper:
    def apply(p: dict[str, Any]) -> None:
        target: Any = p
        keys = path.split(".")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return apply


def _flip_hex(path: str, at: int = 5) -> Tamper:
    def apply(p: dict[str, Any]) -> None:
        target: Any = p
        keys = path.split(".")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
        s = target[last]
        target[last] = s[:at] + ("0" if s[at] != "0" else "1") + s[at + 1 :]

    return apply


def _drop_cert(index: int) -> Tamper:
    def apply(p: dict[str, Any]) -> None:
        del p["certificate"][index]

    return apply


def _dup_cert(p: dict[str, Any]) -> None:
    p["certificate"][2] = dict(p["certificate"][0])


def _swap_tx(p: dict[str, Any]) -> None:
    # a transaction the attacker signed, with a matching tx_hash
    tx = build_tx(CHAIN, "data.anchor", {"digest": "ee" * 32, "kind": "x"}, ATTACKER, 1)
    p["tx"] = tx.to_json_obj()
    p["tx_hash"] = tx.hash


def _edit_tx_rehash(p: dict[str, Any]) -> None:
    p["tx"]["body"]["kind"] = "forged"
    from node.core.tx import tx_from_json_obj

    p["tx_hash"] = tx_from_json_obj(p["tx"]).hash


def _timestamp_everywhere(p: dict[str, Any]) -> None:
    # move the time consistently in header and proposal and fix the block hash:
    # only the certificate can catch it
    from node.core.block import BlockHeader

    p["header"]["timestamp"] += 1
    p["proposal"]["timestamp"] += 1
    p["block_hash"] = BlockHeader.from_json(p["header"]).hash()


def _extra_path(p: dict[str, Any]) -> None:
    p["audit_path"].append("00" * 32)


def _short_path(p: dict[str, Any]) -> None:
    p["audit_path"].pop()


TAMPERS: list[tuple[str, Tamper, str]] = [
    ("path element", _flip_hex("audit_path.1"), "Merkle audit path leads to root"),
    ("path too long", _extra_path, "audit path is too long"),
    ("path too short", _short_path, "audit path is too short"),
    ("index", _set("index", 2), "Merkle audit path leads to root"),
    ("index outside tree", _set("index", 6), "leaf index 6 outside tree of 6"),
    ("tree size", _set("tree_size", 9), "audit path is too short"),
    ("tree size small", _set("tree_size", 4), "audit path is too long"),
    ("tx body", _set("tx.body.kind", "forged"), "is not the transaction's hash"),
    ("tx body, rehashed", _edit_tx_rehash, "signature does not verify"),
    ("tx nonce", _set("tx.nonce", 999), "is not the transaction's hash"),
    ("tx sig", _flip_hex("tx.sig"), "signature does not verify"),
    ("tx swapped", _swap_tx, "Merkle audit path leads to root"),
    ("tx hash", _flip_hex("tx_hash"), "is not the transaction's hash"),
    ("tx float", _set("tx.body.amount", 1.5), "floats are not allowed"),
    ("header tx_root", _flip_hex("header.tx_root"), "not the header's tx_root"),
    ("header height", _set("header.height", 2), "header.height 2 does not match"),
    ("header timestamp", _set("header.timestamp", 5), "header.timestamp 5 does not match"),
    ("header proposer", _set("header.proposer", 1), "header.proposer 1 does not match"),
    ("header chain", _set("header.chain_id", "evil"), "header is for chain 'evil'"),
    ("header view", _set("header.view", 4), "header.view 4 is not the certificate's view 0"),
    ("header state_root", _flip_hex("header.state_root"), "is not the header's hash"),
    ("block hash", _flip_hex("block_hash"), "is not the header's hash"),
    ("proposal time", _set("proposal.timestamp", 7), "does not match the proposal's 7"),
    ("time everywhere", _timestamp_everywhere, "bad signature of validator 0"),
    ("cert signature", _flip_hex("certificate.1.sig", 20), "bad signature of validator 1"),
    ("cert validator", _set("certificate.1.validator", 3), "bad signature of validator 3"),
    ("cert view", _set("certificate.1.view", 1), "is for another block"),
    ("cert too few", _drop_cert(0), "2 signatures, 3 needed"),
    ("cert duplicate", _dup_cert, "the same validator signed twice"),
    ("cert outsider", _set("certificate.2.validator", 9), "signer 9 is not a validator"),
    ("cert bad hex", _set("certificate.0.sig", "zz"), "certificate[0].sig"),
    ("format", _set("format", "other/9"), "unsupported proof format"),
    ("negative index", _set("index", -1), "index must be an integer"),
]


@pytest.mark.parametrize(("name", "tamper", "reason"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tampered_proof_fails_with_reason(name: str, tamper: Tamper, reason: str) -> None:
    proof = good_proof()
    verify_proof(copy.deepcopy(proof), CHAIN, PUBKEYS)
    tamper(proof)
    with pytest.raises(ProofError) as e:
        verify_proof(proof, CHAIN, PUBKEYS)
    assert reason in str(e.value), f"{name}: {e.value}"


def test_wrong_genesis() -> None:
    proof = good_proof()
    with pytest.raises(ProofError, match="transaction is for chain 'hygeia-test', not 'other'"):
        verify_proof(proof, "other", PUBKEYS)
    other_keys = [key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(proof, CHAIN, [bytes(k.verify_key) for k in other_keys])
    # a larger validator set needs a larger quorum (n=7: 5 commits)
    seven = PUBKEYS + [bytes(k.verify_key) for k in other_keys[:3]]
    with pytest.raises(ProofError, match="3 signatures, 5 needed"):
        verify_proof(proof, CHAIN, seven)


def test_malformed_proofs() -> None:
    with pytest.raises(ProofError, match="not a JSON object"):
        verify_proof([1], CHAIN, PUBKEYS)
    proof = good_proof()
    del proof["certificate"]
    with pytest.raises(ProofError, match="'certificate' is missing"):
        verify_proof(proof, CHAIN, PUBKEYS)
    proof = good_proof()
    proof["extra"] = 1
    with pytest.raises(ProofError, match="unknown field 'extra'"):
        verify_proof(proof, CHAIN, PUBKEYS)
    proof = good_proof()
    del proof["proposal"]["proposer"]
    with pytest.raises(ProofError, match="proposal must have exactly"):
        verify_proof(proof, CHAIN, PUBKEYS)
    proof = good_proof()
    proof["header"] = "x"
    with pytest.raises(ProofError, match="header: must be a JSON object"):
        verify_proof(proof, CHAIN, PUBKEYS)


def test_state_root_and_parent_are_not_certified() -> None:
    """Documented limit (docs/blocks.md): the commit certificate covers the
    proposal, not the post-commit parent hash and state root. A proof with a
    consistently rewritten state root still proves inclusion, and its block
    hash no longer matches the chain's."""
    from node.core.block import BlockHeader

    block = make_block(4)
    proof = json.loads(json.dumps(build_proof(block, 0)))
    proof["header"]["state_root"] = "ab" * 32
    proof["block_hash"] = BlockHeader.from_json(proof["header"]).hash()
    result = verify_proof(proof, CHAIN, PUBKEYS)
    assert result.block_hash != block.hash


def test_proof_of_a_later_block() -> None:
    parent = make_block(2)
    committed = make_committed(make_txs(3), height=2, view=5, signers=(1, 2, 3))
    block = derive_block(committed, parent.hash, STATE_ROOT)
    result = verify_proof(build_proof(block, 2), CHAIN, PUBKEYS)
    assert (result.height, result.view, result.validators) == (2, 5, (1, 2, 3))
    assert block.header.parent_hash == parent.hash != GENESIS_PARENT_HASH


def test_docs_example_block_proves_with_one_validator() -> None:
    block = example_block()
    result = verify_proof(
        build_proof(block, 2), "hygeia-example", [bytes(EXAMPLE_VALIDATOR.verify_key)]
    )
    assert result.statement() == (
        f"transaction {block.tx_hashes[2].hex()} was committed at height 1 at time "
        "1767225600000 (2026-01-01T00:00:00.000Z) by validators [0]"
    )
