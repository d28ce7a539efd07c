"""Proofs of outcome on a running 4-validator cluster: a proof says whether the ledger
accepted or rejected the transaction, checked offline against a stable checkpoint's
quorum signatures, and ``hygeia proof verify --require-accepted`` acts on it.

One accepted anchor and one rejected anchor (the same digest again:
``already-anchored``), then more blocks until a checkpoint above both is stable.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli.client import proof as proof_cli
from node.core.proof import ProofError, verify_proof
from node.core.tx import build_tx
from tests.integration.cluster import Cluster, wait_until

SMALL_CHECKPOINTS = {"checkpoint_interval": 4, "watermark_window": 8}


async def _certified_proof(c: Cluster, tx_hash: str) -> dict[str, Any]:
    """The proof of ``tx_hash`` once it carries an outcome (a checkpoint above its
    block is stable), anchoring more digests meanwhile so that blocks come."""

    def probe() -> dict[str, Any] | None:
        proof = c.node(0).proof_json(tx_hash)
        return proof if proof is not None and proof["outcome"] is not None else None

    for _ in range(3):
        more = [c.anchor_tx(member=i % 4) for i in range(8)]
        for tx in more:
            await c.node(0).submit_tx(tx.wire)
        await c.wait_committed([tx.hash for tx in more], [0])
        if probe() is not None:
            break
    proof: dict[str, Any] = await wait_until(f"a certified outcome of {tx_hash[:12]}", probe)
    return proof


async def test_a_proof_states_the_outcome_and_is_checked_against_a_checkpoint(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    c = make_cluster(4, SMALL_CHECKPOINTS)
    await c.start(0, 1, 2, 3)
    key = c.homes[1].member_key
    digest = secrets.token_hex(32)
    body = {"digest": digest, "kind": "itest"}
    accepted = build_tx(c.chain_id, "data.anchor", body, key, 1)
    await c.node(0).submit_tx(accepted.wire)
    await c.wait_committed([accepted.hash], [0])
    rejected = build_tx(c.chain_id, "data.anchor", body, key, 2)  # the same digest again
    await c.node(0).submit_tx(rejected.wire)
    await wait_until(
        "the second anchor decided",
        lambda: c.node(0).tx_status(rejected.hash)["status"],
        lambda s: s == "rejected",
    )

    keys = [v.public_key for v in c.genesis.validators]
    uncertified = c.node(0).proof_json(rejected.hash)
    assert uncertified is not None
    if uncertified["outcome"] is None:  # no stable checkpoint above it yet: no outcome
        assert verify_proof(uncertified, c.chain_id, keys).outcome is None

    good = await _certified_proof(c, accepted.hash)
    bad = await _certified_proof(c, rejected.hash)
    ok = verify_proof(good, c.chain_id, keys)
    assert ok.outcome is not None and ok.outcome.accepted
    assert ok.outcome.checkpoint % 4 == 0 and ok.outcome.checkpoint >= ok.height
    assert ok.statement().endswith("committed and ACCEPTED")
    no = verify_proof(bad, c.chain_id, keys)
    assert no.outcome is not None and not no.outcome.accepted
    assert no.outcome.code == "already-anchored"
    assert no.statement().endswith("committed but REJECTED: already-anchored")

    # a forged outcome fails, whatever part is changed
    def forged(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        p = copy.deepcopy(bad)
        change(p["outcome"])
        return p

    def accept(o: dict[str, Any]) -> None:
        o["result"].update(status="ok", code="ok", message="")

    def other_digest(o: dict[str, Any]) -> None:
        o["blocks"][-1]["writes_digest"] = "00" * 32

    def fewer_signatures(o: dict[str, Any]) -> None:
        del o["checkpoint"]["signatures"][1:]

    def other_height(o: dict[str, Any]) -> None:
        o["checkpoint"]["height"] += 4

    def other_index(o: dict[str, Any]) -> None:
        o["result"]["index"] += 1

    for change, reason in (
        (accept, "not in the block's results root"),
        (other_digest, "bad signature|does not match"),
        (fewer_signatures, "needed"),
        (other_height, "do not end at"),
        (other_index, "another height or index"),
    ):
        with pytest.raises(ProofError, match=reason):
            verify_proof(forged(change), c.chain_id, keys)

    # the CLI says it plainly and --require-accepted acts on it
    genesis = c.homes[0].path / "genesis.json"
    files = {}
    for name, proof in (("good", good), ("bad", bad), ("open", uncertified)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(proof), encoding="utf-8")
    runner = CliRunner()

    def verify(name: str, *extra: str) -> tuple[int, str]:
        args = ["verify", str(files[name]), "--genesis", str(genesis), *extra]
        result = runner.invoke(proof_cli, args, catch_exceptions=False)
        return result.exit_code, result.output

    code, out = verify("good", "--require-accepted")
    assert code == 0 and "outcome: committed and ACCEPTED" in out, out
    code, out = verify("bad")
    assert code == 0 and "outcome: committed but REJECTED: already-anchored" in out, out
    code, out = verify("bad", "--require-accepted")
    assert code == 2 and "REJECTED" in out, out
    if uncertified["outcome"] is None:
        code, out = verify("open", "--require-accepted")
        assert code == 2 and "not certified" in out, out
