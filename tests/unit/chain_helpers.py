"""Signed transactions and committed blocks for the unit tests: the fixed keys, the
builders, and the worked examples of docs/transactions.md and docs/blocks.md."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from consensus.merkle import merkle_root
from consensus.messages import Commit, CommittedBlock, Proposal
from node.core.block import GENESIS_PARENT_HASH, Block, derive_block
from node.core.keys import KeySigner, key_from_seed
from node.core.tx import Tx, TxPayloadRules, build_tx

KEY = key_from_seed(bytes(range(1, 33)))  # the member of the worked examples


def anchor_body() -> dict[str, Any]:
    return {
        "digest": hashlib.sha256(b"hygeia example lab report").hexdigest(),
        "kind": "lab-report",
    }


def doc_blocks(text: str) -> dict[str, str]:
    pattern = re.compile(r"<!-- example:(\w+) -->\s*```\w*\n(.*?)\n```", re.S)
    return {m.group(1): m.group(2) for m in pattern.finditer(text)}


CHAIN = "hygeia-test"
N = 4
VALIDATOR_KEYS = [key_from_seed(hashlib.sha256(b"validator-%d" % i).digest()) for i in range(N)]
PUBKEYS = [bytes(k.verify_key) for k in VALIDATOR_KEYS]
CLIENT = key_from_seed(hashlib.sha256(b"client").digest())
STATE_ROOT = hashlib.sha256(b"state").digest()


def make_txs(count: int, chain: str = CHAIN) -> list[Tx]:
    return [
        build_tx(chain, "data.anchor", {"digest": f"{i:064x}", "kind": "lab-report"}, CLIENT, i)
        for i in range(count)
    ]


def make_committed(
    txs: Sequence[Tx],
    *,
    height: int = 1,
    view: int = 0,
    signers: Sequence[int] = (0, 1, 2),
    timestamp: int = 1_767_225_600_000,
    proposer: int = 0,
    chain: str = CHAIN,
) -> CommittedBlock:
    rules = TxPayloadRules(chain)
    payload = tuple(t.wire for t in txs)
    proposal = Proposal(chain, height, timestamp, proposer, rules.payload_root(payload))
    digest = proposal.digest()
    cert = []
    for i in signers:
        c = Commit(view, height, digest, i)
        sig = KeySigner(VALIDATOR_KEYS[i]).sign(c.signing_bytes(chain))
        cert.append(msgspec.structs.replace(c, sig=sig))
    return CommittedBlock(proposal, payload, tuple(cert))


def make_block(n_txs: int = 5, **kw: object) -> Block:
    committed = make_committed(make_txs(n_txs), **kw)  # type: ignore[arg-type]
    return derive_block(committed, GENESIS_PARENT_HASH, STATE_ROOT)


EXAMPLE_VALIDATOR = key_from_seed(hashlib.sha256(b"hygeia-example-validator-0").digest())


def example_block() -> Block:
    """The block of docs/blocks.md's worked example (one validator: n = 1)."""
    chain = "hygeia-example"
    txs = [build_tx(chain, "data.anchor", anchor_body(), KEY, n) for n in (1, 2, 3)]
    root = merkle_root([t.hash_bytes for t in txs])
    proposal = Proposal(chain, 1, 1_767_225_600_000, 0, root)
    commit = Commit(0, 1, proposal.digest(), 0)
    sig = KeySigner(EXAMPLE_VALIDATOR).sign(commit.signing_bytes(chain))
    committed = CommittedBlock(
        proposal, tuple(t.wire for t in txs), (msgspec.structs.replace(commit, sig=sig),)
    )
    state_root = hashlib.sha256(b"hygeia example state").digest()
    return derive_block(committed, GENESIS_PARENT_HASH, state_root)
