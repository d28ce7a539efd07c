"""Inclusion proofs: a good proof verifies offline; every tampered variant fails with a reason.
A block of a later epoch verifies from genesis's keys through the proof's epoch links; a
proof without them, or certified by the wrong set or under the wrong domain, fails; the
old format (/1, no links) still verifies a block of genesis's set."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest

from consensus.epochs import signing_domain
from consensus.messages import Commit, CommittedBlock, Proposal
from node.core.block import GENESIS_PARENT_HASH, Block, derive_block
from node.core.epoch_link import attestation_bytes, link_json
from node.core.keys import SigningKey, key_from_seed, sign
from node.core.proof import (
    PROOF_FIELDS,
    PROOF_FORMAT,
    PROOF_FORMAT_V1,
    ProofError,
    build_proof,
    verify_proof,
)
from node.core.tx import TxPayloadRules, build_tx
from tests.unit.chain_helpers import (
    CHAIN,
    EXAMPLE_VALIDATOR,
    PUBKEYS,
    STATE_ROOT,
    VALIDATOR_KEYS,
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
    ("epochs not a list", _set("epochs", {}), "epoch link: epochs must be a list"),
    ("epochs null", _set("epochs", None), "epoch link: epochs must be a list"),
    ("epochs junk link", _set("epochs", [{}]), "epoch link: epochs[0] must have exactly"),
    ("format /1 with epochs", _set("format", PROOF_FORMAT_V1), "unknown field 'epochs'"),
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


@pytest.mark.parametrize("field", PROOF_FIELDS)
def test_every_field_is_required(field: str) -> None:
    proof = good_proof()
    del proof[field]
    reason = "unsupported proof format None" if field == "format" else f"field '{field}' is missing"
    with pytest.raises(ProofError, match=reason):
        verify_proof(proof, CHAIN, PUBKEYS)


# ------------------------------------------------------------------ epochs
# Epoch 1: five new validators from height 5, attested by genesis's (chain_helpers).
EPOCH1_KEYS = [
    key_from_seed(hashlib.sha256(b"epoch-1-validator-%d" % i).digest()) for i in range(5)
]
EPOCH1_FIRST = 5
PARENT = hashlib.sha256(b"parent").hexdigest()


def _hexes(keys: Sequence[SigningKey]) -> list[str]:
    return [bytes(k.verify_key).hex() for k in keys]


def make_link(
    epoch: int = 1,
    first_height: int = EPOCH1_FIRST,
    new: Sequence[SigningKey] = EPOCH1_KEYS,
    previous: Sequence[SigningKey] = VALIDATOR_KEYS,
    indices: Sequence[int] = (0, 1, 2),
) -> dict[str, Any]:
    """``new`` as epoch ``epoch`` from ``first_height``, attested by ``indices`` of
    ``previous`` (default: a quorum of genesis's four)."""
    validators = _hexes(new)
    message = attestation_bytes(CHAIN, epoch, first_height, validators)
    sigs = [(i, sign(previous[i], message).hex()) for i in indices]
    return link_json(epoch, first_height, validators, sigs)


def make_epoch_block(
    height: int = 7,
    *,
    keys: Sequence[SigningKey] = EPOCH1_KEYS,
    domain: str = signing_domain(CHAIN, 1),
    signers: Sequence[int] = (0, 1, 2, 3),
    n_txs: int = 4,
    view: int = 0,
    proposer: int = 1,
) -> Block:
    """A block committed by ``keys`` (default: epoch 1's, a quorum of 5) signing under
    ``domain`` (default: epoch 1's), as chain_helpers.make_committed does for genesis's."""
    txs = make_txs(n_txs)
    payload = tuple(t.wire for t in txs)
    proposal = Proposal(
        CHAIN,
        height,
        1_767_225_600_000 + height,
        proposer,
        TxPayloadRules(CHAIN).payload_root(payload),
    )
    cert = []
    for i in signers:
        c = Commit(view, height, proposal.digest(), i)
        cert.append(msgspec.structs.replace(c, sig=sign(keys[i], c.signing_bytes(domain))))
    return derive_block(CommittedBlock(proposal, payload, tuple(cert)), PARENT, STATE_ROOT)


def _json(proof: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(proof))
    return loaded


def test_block_of_epoch_1_verifies_from_genesis_keys() -> None:
    block = make_epoch_block(7, signers=(4, 0, 2, 1))
    proof = _json(build_proof(block, 2, [make_link()]))
    assert proof["format"] == PROOF_FORMAT and len(proof["epochs"]) == 1
    result = verify_proof(proof, CHAIN, PUBKEYS)
    assert result.epoch == 1
    assert (result.height, result.index, result.validators) == (7, 2, (0, 1, 2, 4))
    assert result.block_hash == block.hash
    assert result.statement().endswith(" by validators [0, 1, 2, 4] of epoch 1")
    assert result.to_json()["epoch"] == 1
    assert verify_proof(proof, CHAIN, [k.hex() for k in PUBKEYS]) == result


def test_epoch_1_at_its_first_height() -> None:
    proof = build_proof(make_epoch_block(EPOCH1_FIRST), 0, [make_link()])
    assert verify_proof(proof, CHAIN, PUBKEYS).epoch == 1


def test_epoch_1_block_without_links_fails() -> None:
    proof = _json(build_proof(make_epoch_block(7), 0, [make_link()]))
    proof["epochs"] = []
    # checked against genesis's four keys under the chain id: no signature holds
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(proof, CHAIN, PUBKEYS)


def test_epoch_1_block_in_format_1_fails() -> None:
    proof = _json(build_proof(make_epoch_block(7), 0))
    proof["format"] = PROOF_FORMAT_V1
    del proof["epochs"], proof["outcome"]
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(proof, CHAIN, PUBKEYS)


def test_genesis_set_cannot_certify_a_height_of_epoch_1() -> None:
    # genesis's four, under the chain id, at height 7 (epoch 1's since height 5)
    old = make_epoch_block(7, keys=VALIDATOR_KEYS, domain=CHAIN, proposer=0)
    assert verify_proof(build_proof(old, 0), CHAIN, PUBKEYS).epoch == 0  # without the link
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(old, 0, [make_link()]), CHAIN, PUBKEYS)
    # nor under epoch 1's domain
    old1 = make_epoch_block(7, keys=VALIDATOR_KEYS, proposer=0)
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(old1, 0, [make_link()]), CHAIN, PUBKEYS)
    # three of genesis's are not a quorum of epoch 1's five either
    short = make_epoch_block(7, keys=VALIDATOR_KEYS, domain=CHAIN, signers=(0, 1, 2))
    with pytest.raises(ProofError, match="3 signatures, 4 needed"):
        verify_proof(build_proof(short, 0, [make_link()]), CHAIN, PUBKEYS)


def test_epoch_1_set_signing_under_the_chain_id_fails() -> None:
    block = make_epoch_block(7, domain=CHAIN)
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(block, 0, [make_link()]), CHAIN, PUBKEYS)
    # nor under another epoch's domain
    block2 = make_epoch_block(7, domain=signing_domain(CHAIN, 2))
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(block2, 0, [make_link()]), CHAIN, PUBKEYS)


def test_link_with_too_few_attestations_fails() -> None:
    proof = build_proof(make_epoch_block(7), 0, [make_link(indices=(0, 3))])
    with pytest.raises(ProofError, match=r"^epoch link: ") as e:
        verify_proof(proof, CHAIN, PUBKEYS)
    assert "attested by 2 validators of epoch 0, a quorum is 3" in str(e.value)


def test_link_attested_by_outsiders_fails() -> None:
    others = [key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
    proof = build_proof(make_epoch_block(7), 0, [make_link(previous=others)])
    with pytest.raises(ProofError, match=r"^epoch link: epochs\[0\]\.attestations\[0\]"):
        verify_proof(proof, CHAIN, PUBKEYS)
    # a good link checked against other genesis keys fails the same way
    proof = build_proof(make_epoch_block(7), 0, [make_link()])
    with pytest.raises(ProofError, match=r"^epoch link: .*did not sign epoch 1"):
        verify_proof(proof, CHAIN, [bytes(k.verify_key) for k in others])


def test_link_first_height_beyond_int64_is_a_proof_error() -> None:
    proof = build_proof(make_epoch_block(7), 0, [make_link()])
    proof["epochs"][0]["first_height"] = 2**63
    with pytest.raises(ProofError, match=r"^epoch link: "):
        verify_proof(proof, CHAIN, PUBKEYS)


EPOCH_TAMPERS: list[tuple[str, Tamper, str]] = [
    ("link first_height", _set("epochs.0.first_height", 6), "did not sign epoch 1"),
    ("link epoch", _set("epochs.0.epoch", 2), "epochs[0] is epoch 2"),
    ("link validator", _flip_hex("epochs.0.validators.3"), "did not sign epoch 1"),
    ("link signature", _flip_hex("epochs.0.attestations.1.signature", 9), "did not sign"),
    ("link attester", _set("epochs.0.attestations.1.validator", 3), "did not sign"),
    ("link dropped", _set("epochs", []), "bad signature of validator 0"),
]


@pytest.mark.parametrize(
    ("name", "tamper", "reason"), EPOCH_TAMPERS, ids=[t[0] for t in EPOCH_TAMPERS]
)
def test_tampered_epoch_link_fails(name: str, tamper: Tamper, reason: str) -> None:
    proof = _json(build_proof(make_epoch_block(7), 1, [make_link()]))
    verify_proof(copy.deepcopy(proof), CHAIN, PUBKEYS)
    tamper(proof)
    with pytest.raises(ProofError) as e:
        verify_proof(proof, CHAIN, PUBKEYS)
    assert reason in str(e.value), f"{name}: {e.value}"


def test_format_1_proof_still_verifies() -> None:
    block = make_block(5, view=2, signers=(1, 2, 3))
    proof = _json(build_proof(block, 4))
    proof["format"] = PROOF_FORMAT_V1
    del proof["epochs"], proof["outcome"]
    result = verify_proof(proof, CHAIN, PUBKEYS)
    assert (result.epoch, result.height, result.view, result.validators) == (0, 1, 2, (1, 2, 3))
    assert result == verify_proof(build_proof(block, 4), CHAIN, PUBKEYS)
    assert " of epoch" not in result.statement()
    # /1 has no epochs field, even an empty one
    proof["epochs"] = []
    with pytest.raises(ProofError, match="unknown field 'epochs'"):
        verify_proof(proof, CHAIN, PUBKEYS)
    # and /2 must have it
    proof = _json(build_proof(block, 4))
    del proof["epochs"]
    with pytest.raises(ProofError, match="field 'epochs' is missing"):
        verify_proof(proof, CHAIN, PUBKEYS)


def test_block_before_the_link_is_genesis_sets() -> None:
    # height 3 < epoch 1's first height 5: genesis's set, even with the link given
    block = make_epoch_block(3, keys=VALIDATOR_KEYS, domain=CHAIN, signers=(0, 1, 2))
    result = verify_proof(_json(build_proof(block, 0, [make_link()])), CHAIN, PUBKEYS)
    assert (result.epoch, result.height, result.validators) == (0, 3, (0, 1, 2))
    assert " of epoch" not in result.statement()
    # the last height before epoch 1
    block = make_epoch_block(EPOCH1_FIRST - 1, keys=VALIDATOR_KEYS, domain=CHAIN)
    assert verify_proof(build_proof(block, 0, [make_link()]), CHAIN, PUBKEYS).epoch == 0
    # and epoch 1's set cannot certify it
    block = make_epoch_block(EPOCH1_FIRST - 1)
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(block, 0, [make_link()]), CHAIN, PUBKEYS)


def test_two_links_and_the_epoch_of_the_height() -> None:
    epoch2_keys = [key_from_seed(hashlib.sha256(b"epoch-2-%d" % i).digest()) for i in range(4)]
    link2 = make_link(2, 10, epoch2_keys, EPOCH1_KEYS, (4, 2, 1, 0))
    links = [make_link(), link2]
    # a block of epoch 1 with a later epoch's link after it: still epoch 1's
    assert verify_proof(build_proof(make_epoch_block(7), 0, links), CHAIN, PUBKEYS).epoch == 1
    # a block of epoch 2, signed under its domain by its set
    block = make_epoch_block(
        12, keys=epoch2_keys, domain=signing_domain(CHAIN, 2), signers=(3, 1, 0, 2)
    )
    result = verify_proof(build_proof(block, 0, links), CHAIN, PUBKEYS)
    assert (result.epoch, result.validators) == (2, (0, 1, 2, 3))
    assert result.statement().endswith(" of epoch 2")
    # without epoch 2's link it is checked against epoch 1's set, and fails
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(block, 0, links[:1]), CHAIN, PUBKEYS)
    # epoch 1's set cannot certify a height of epoch 2 when the link is given
    stale = make_epoch_block(12)
    with pytest.raises(ProofError, match="bad signature of validator 0"):
        verify_proof(build_proof(stale, 0, links), CHAIN, PUBKEYS)
    # links out of order
    with pytest.raises(ProofError, match=r"^epoch link: epochs\[0\] is epoch 2"):
        verify_proof(build_proof(block, 0, [link2]), CHAIN, PUBKEYS)
