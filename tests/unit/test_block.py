"""Block headers, hashes, derivation from committed proposals, storage and JSON forms."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consensus.merkle import EMPTY_ROOT, audit_path, leaf_hash, merkle_root, node_hash
from consensus.messages import DOMAIN, Commit, CommittedBlock, Proposal, canonical
from node.core.block import (
    GENESIS_PARENT_HASH,
    Block,
    BlockError,
    BlockHeader,
    derive_block,
)
from node.core.codec import canonical_json
from node.core.keys import KeySigner
from node.core.tx import TxPayloadRules, build_tx
from tests.unit.chain_helpers import (
    CHAIN,
    EXAMPLE_VALIDATOR,
    KEY,
    STATE_ROOT,
    anchor_body,
    doc_blocks,
    example_block,
    make_block,
    make_committed,
    make_txs,
)


def test_derive_block_fields() -> None:
    txs = make_txs(3)
    committed = make_committed(txs, view=2, proposer=2, timestamp=42)
    block = derive_block(committed, GENESIS_PARENT_HASH, STATE_ROOT)
    h = block.header
    assert (h.chain_id, h.height, h.view, h.timestamp, h.proposer) == (CHAIN, 1, 2, 42, 2)
    assert h.parent_hash == "0" * 64
    assert h.state_root == STATE_ROOT.hex()
    assert h.tx_root == committed.proposal.payload_root.hex()
    assert block.tx_hashes == tuple(t.hash_bytes for t in txs)
    assert block.txs == committed.payload
    assert block.proposal == committed.proposal
    assert block.committed() == committed
    assert block.tx_index(txs[1].hash_bytes) == 1
    assert block.tx_index(b"\x00" * 32) is None


def test_block_hash_rule() -> None:
    block = make_block()
    h = block.header
    expect = canonical_json(
        {
            "chain_id": h.chain_id,
            "height": h.height,
            "parent_hash": h.parent_hash,
            "proposer": h.proposer,
            "state_root": h.state_root,
            "timestamp": h.timestamp,
            "tx_root": h.tx_root,
        }
    )
    assert h.canonical_bytes() == expect
    assert block.hash == hashlib.sha256(expect).hexdigest()


def test_block_hash_deterministic_and_view_independent() -> None:
    txs = make_txs(4)
    a = derive_block(make_committed(txs, view=0), GENESIS_PARENT_HASH, STATE_ROOT)
    b = derive_block(make_committed(txs, view=0), GENESIS_PARENT_HASH, STATE_ROOT)
    # the same proposal committed in view 3 by other validators: same block
    c = derive_block(
        make_committed(txs, view=3, signers=(1, 2, 3)), GENESIS_PARENT_HASH, STATE_ROOT
    )
    assert a.hash == b.hash == c.hash
    assert c.header.view == 3
    # whereas every other header field changes the hash
    other_parent = derive_block(make_committed(txs), "11" * 32, STATE_ROOT)
    other_state = derive_block(make_committed(txs), GENESIS_PARENT_HASH, b"\x22" * 32)
    other_time = derive_block(make_committed(txs, timestamp=1), GENESIS_PARENT_HASH, STATE_ROOT)
    other_txs = derive_block(make_committed(txs[:3]), GENESIS_PARENT_HASH, STATE_ROOT)
    hashes = {a.hash, other_parent.hash, other_state.hash, other_time.hash, other_txs.hash}
    assert len(hashes) == 5


def test_chain_of_parent_hashes() -> None:
    b1 = make_block(2)
    c2 = make_committed(make_txs(1), height=2)
    b2 = derive_block(c2, b1.hash, bytes.fromhex(STATE_ROOT.hex()))
    assert b2.header.parent_hash == b1.hash
    assert b2.header.height == 2


def test_empty_block() -> None:
    block = make_block(0)
    assert block.header.tx_root == EMPTY_ROOT.hex()
    assert block.txs == () and block.tx_hashes == ()
    assert Block.from_bytes(block.to_bytes()).hash == block.hash


def test_derive_with_rules_cache() -> None:
    txs = make_txs(3)
    rules = TxPayloadRules(CHAIN)
    block = derive_block(
        make_committed(txs), GENESIS_PARENT_HASH, STATE_ROOT, tx_hash=rules.request_id
    )
    assert block.tx_hashes == tuple(t.hash_bytes for t in txs)


def test_derive_rejects_inconsistencies() -> None:
    txs = make_txs(3)
    committed = make_committed(txs)
    with pytest.raises(BlockError, match="view 5 but the certificate is of"):
        derive_block(committed, GENESIS_PARENT_HASH, STATE_ROOT, 5)
    assert derive_block(committed, GENESIS_PARENT_HASH, STATE_ROOT, 0).header.view == 0
    wrong_root = msgspec.structs.replace(committed, payload=committed.payload[:2])
    with pytest.raises(BlockError, match="Merkle root"):
        derive_block(wrong_root, GENESIS_PARENT_HASH, STATE_ROOT)
    garbage = msgspec.structs.replace(committed, payload=(b"nope",))
    with pytest.raises(BlockError, match="invalid transaction"):
        derive_block(garbage, GENESIS_PARENT_HASH, STATE_ROOT)
    with pytest.raises(BlockError, match="parent_hash"):
        derive_block(committed, "00" * 31, STATE_ROOT)
    with pytest.raises(BlockError, match="state_root: must be 32 bytes"):
        derive_block(committed, GENESIS_PARENT_HASH, b"short")
    mixed = msgspec.structs.replace(
        committed,
        certificate=(
            *committed.certificate[:2],
            msgspec.structs.replace(committed.certificate[2], view=1),
        ),
    )
    with pytest.raises(BlockError, match="mixes views"):
        derive_block(mixed, GENESIS_PARENT_HASH, STATE_ROOT)
    empty_cert = msgspec.structs.replace(committed, certificate=())
    with pytest.raises(BlockError, match="no view given"):
        derive_block(empty_cert, GENESIS_PARENT_HASH, STATE_ROOT)


def test_storage_roundtrip_is_deterministic() -> None:
    block = make_block(7)
    data = block.to_bytes()
    back = Block.from_bytes(data)
    assert back == block
    assert back.hash == block.hash
    assert back.to_bytes() == data
    # an independently built identical block encodes to identical bytes
    assert make_block(7).to_bytes() == data


def test_storage_rejects_corruption() -> None:
    block = make_block(3)
    data = block.to_bytes()
    with pytest.raises(BlockError, match="corrupt"):
        Block.from_bytes(data[:-5])
    with pytest.raises(BlockError, match="corrupt"):
        Block.from_bytes(b"\x00garbage")
    newer = msgspec.msgpack.encode([2, *msgspec.msgpack.decode(data)[1:]])
    with pytest.raises(BlockError, match="record version 2"):
        Block.from_bytes(newer)
    fields = msgspec.msgpack.decode(data)
    fields[3] = fields[3][:2]  # drop a tx hash
    with pytest.raises(BlockError, match="3 txs but 2 hashes"):
        Block.from_bytes(msgspec.msgpack.encode(fields))
    fields = msgspec.msgpack.decode(data)
    fields[3][0] = b"\x01" * 32
    with pytest.raises(BlockError, match="Merkle root"):
        Block.from_bytes(msgspec.msgpack.encode(fields))


def test_json_roundtrip() -> None:
    block = make_block(3)
    obj = block.to_json()
    assert obj["hash"] == block.hash
    assert obj["header"]["view"] == 0
    assert obj["txs"][0]["type"] == "data.anchor"
    assert obj["certificate"][0] == {
        "validator": 0,
        "view": 0,
        "sig": block.certificate[0].sig.hex(),
    }
    text = json.dumps(obj)
    back = Block.from_json(json.loads(text))
    assert back == block
    assert back.to_bytes() == block.to_bytes()


def test_json_rejects_tampering() -> None:
    block = make_block(3)
    obj = block.to_json()
    bad = json.loads(json.dumps(obj))
    bad["header"]["timestamp"] += 1
    with pytest.raises(BlockError, match=r"block\.hash"):
        Block.from_json(bad)
    bad = json.loads(json.dumps(obj))
    bad["txs"][0]["nonce"] = 99
    with pytest.raises(BlockError, match="tx_hashes"):
        Block.from_json(bad)
    bad = json.loads(json.dumps(obj))
    bad["header"]["parent_hash"] = "XX"
    with pytest.raises(BlockError, match=r"header\.parent_hash"):
        Block.from_json(bad)
    bad = json.loads(json.dumps(obj))
    bad["header"]["extra"] = 1
    with pytest.raises(BlockError, match=r"header\.extra: unknown"):
        Block.from_json(bad)
    bad = json.loads(json.dumps(obj))
    del bad["header"]["view"]
    with pytest.raises(BlockError, match=r"header\.view: missing"):
        Block.from_json(bad)


def test_header_validation() -> None:
    good = make_block(1).header
    changes: list[tuple[dict[str, Any], str]] = [
        ({"height": 0}, "header.height"),
        ({"view": -1}, "header.view"),
        ({"timestamp": True}, "header.timestamp"),
        ({"proposer": "0"}, "header.proposer"),
        ({"tx_root": "AB" * 32}, "header.tx_root"),
        ({"chain_id": ""}, "header.chain_id"),
    ]
    for change, message in changes:
        with pytest.raises(BlockError, match=message):
            BlockHeader.from_json({**good.to_json(), **change})


# ------------------------------------------------------------------ docs/blocks.md example

BLOCKS_DOC = Path(__file__).resolve().parents[2] / "docs" / "blocks.md"


def block_example_values() -> dict[str, str]:
    """Every value the worked example of docs/blocks.md shows (computed step by step)."""
    chain = "hygeia-example"
    txs = [build_tx(chain, "data.anchor", anchor_body(), KEY, n) for n in (1, 2, 3)]
    hashes = [t.hash_bytes for t in txs]
    leaves = [leaf_hash(h) for h in hashes]
    n01 = node_hash(leaves[0], leaves[1])
    root = node_hash(n01, leaves[2])
    assert root == merkle_root(hashes)
    validator = EXAMPLE_VALIDATOR
    proposal = Proposal(chain, 1, 1_767_225_600_000, 0, root)
    commit = Commit(0, 1, proposal.digest(), 0)
    signing = commit.signing_bytes(chain)
    cert_sig = KeySigner(validator).sign(signing)
    committed = CommittedBlock(
        proposal, tuple(t.wire for t in txs), (msgspec.structs.replace(commit, sig=cert_sig),)
    )
    state_root = hashlib.sha256(b"hygeia example state").digest()
    block = derive_block(committed, GENESIS_PARENT_HASH, state_root)
    assert block.to_bytes() == example_block().to_bytes()
    return {
        "tx_hashes": "\n".join(h.hex() for h in hashes),
        "leaf_hashes": "\n".join(x.hex() for x in leaves),
        "node_01": n01.hex(),
        "tx_root": root.hex(),
        "audit_path_0": "\n".join(x.hex() for x in audit_path(hashes, 0)),
        "audit_path_2": "\n".join(x.hex() for x in audit_path(hashes, 2)),
        "header_json": json.dumps(block.header.to_json(), indent=2),
        "header_hashed_bytes": block.header.canonical_bytes().decode(),
        "block_hash": block.hash,
        "proposal_msgpack_hex": canonical((DOMAIN, "proposal", proposal)).hex(),
        "proposal_digest": proposal.digest().hex(),
        "commit_signing_bytes_hex": signing.hex(),
        "validator_public_key": bytes(validator.verify_key).hex(),
        "commit_sig": cert_sig.hex(),
        "certificate_json": json.dumps(block.to_json()["certificate"], indent=2),
    }


_WRAPPED = {"proposal_msgpack_hex", "commit_signing_bytes_hex", "commit_sig"}


def render_block_example() -> str:
    out = []
    for name, value in block_example_values().items():
        if name in _WRAPPED:
            value = "\n".join(value[i : i + 64] for i in range(0, len(value), 64))
        lang = "json" if name.endswith("_json") else "text"
        out.append(f"<!-- example:{name} -->\n```{lang}\n{value}\n```\n")
    return "\n".join(out)


def test_blocks_doc_example_matches() -> None:
    blocks = doc_blocks(BLOCKS_DOC.read_text(encoding="utf-8"))
    want = block_example_values()
    assert set(blocks) == set(want), "docs/blocks.md example blocks are missing or extra"
    for name, value in want.items():
        got = blocks[name]
        if name in _WRAPPED:
            got = "".join(got.split())
        assert got == value, (
            f"docs/blocks.md example {name!r} drifted; "
            "regenerate with `.venv/bin/python -m tests.unit.test_block`"
        )


if __name__ == "__main__":
    print(render_block_example())
