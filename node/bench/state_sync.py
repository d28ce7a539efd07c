"""How long a new node takes to hold the state of a long chain: state sync against
full block replay (docs/benchmarks.md, "State sync").

``python -m node.bench.state_sync [--txs N] [--block-txs B] [--chunk-bytes C]``
builds, in a temporary directory, a real LevelDB chain of N committed
``data.anchor`` transactions (blocks of B, each with a commit certificate of three
of four validators), then measures on the same machine:

- **replay**: a fresh node's work for every block as block sync hands it over:
  the certificate (three Ed25519 signatures), every transaction's signature
  (the verify pool's two threads), execution through the ledger and the synced
  write (``BlockApplier.apply``);
- **state sync**: a fresh node's work for the snapshot of the tip: cutting it
  (the serving side, in the snapshot thread), checking the manifest against
  genesis, checking every chunk (SHA-256, order, LtHash share) and writing it,
  and the final synced batch (``finish_restore``).

Both run in this process, without the network (loopback moves chunks far
faster than they are checked). Prints one JSON object. Building the chain is
not timed; it takes about as long as the replay.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from consensus.config import ConsensusConfig
from consensus.messages import Checkpoint, Commit, CommittedBlock, Proposal
from consensus.quorum import verify_commit_certificate
from node.core.block import Block
from node.core.keys import KeySigner, ValidatorVerifier, load_key
from node.core.state_root import BlockDigests
from node.core.tx import Tx, TxPayloadRules, build_tx
from node.engine.applier import BlockApplier, genesis_root
from node.ledger.executor import Ledger
from node.ledger.state_hash import STATE_HASH_KEY, StateHash
from node.setup import testnet
from node.setup.genesis import Genesis, load_genesis
from node.statesync.manifest import (
    CheckpointSig,
    cut_chunks,
    pending_manifest,
    verify_chunk,
    verify_manifest,
)
from storage.chain import ChainStore

CHAIN = "hygeia-bench-sync"


def _committed(
    genesis: Genesis, signers: list[KeySigner], rules: TxPayloadRules, height: int, txs: list[Tx]
) -> CommittedBlock:
    payload = tuple(t.wire for t in txs)
    proposal = Proposal(
        genesis.chain_id, height, genesis.genesis_time + height, 0, rules.payload_root(payload)
    )
    digest = proposal.digest()
    cert = []
    for i, signer in enumerate(signers[:3]):
        commit = Commit(0, height, digest, i)
        sig = signer.sign(commit.signing_bytes(genesis.chain_id))
        cert.append(msgspec.structs.replace(commit, sig=sig))
    return CommittedBlock(proposal, payload, tuple(cert))


def _build(
    root: Path, n_txs: int, block_txs: int
) -> tuple[Genesis, list[KeySigner], Path, BlockDigests]:
    """The testnet and a chain of ``n_txs`` anchors in ``root/source``: the genesis, the
    validators' signers, the chain's path and what its tip block adds to the state root."""
    meta = testnet.testnet_init(root / "testnet", validators=4, chain_id=CHAIN)
    homes = [Path(n["home"]) for n in meta["nodes"]]
    genesis = load_genesis(homes[0] / "genesis.json")
    signers = [KeySigner(load_key(h / "node_key.json")) for h in homes]
    members = [load_key(h / testnet.MEMBER_KEY_FILE) for h in homes]
    path = root / "source"
    store = ChainStore.open(path, create=True)
    rules = TxPayloadRules(genesis.chain_id)
    applier = BlockApplier(store, genesis, Ledger(), rules)
    height, nonce = 0, 0
    tip_digests: BlockDigests | None = None
    while nonce < n_txs:
        txs = []
        for _ in range(min(block_txs, n_txs - nonce)):
            body = {"digest": f"{nonce:064x}", "kind": "bench"}
            txs.append(build_tx(genesis.chain_id, "data.anchor", body, members[nonce % 4], nonce))
            nonce += 1
        height += 1
        _, outcome = applier.apply(_committed(genesis, signers, rules, height, txs))
        tip_digests = outcome.digests
    store.close()
    assert tip_digests is not None, "a chain of at least one block"
    return genesis, signers, path, tip_digests


def _replay(
    genesis: Genesis, source: Path, target: Path, *, verify_signatures: bool = False
) -> dict[str, Any]:
    """Time what a fresh node does for every block block sync hands it, in the
    node's order: decode the block, check its payload root and certificate (block
    sync, node/net/sync.py), both again (the replica's ``_check_block``), execute
    and write it (``BlockApplier.apply``). ``verify_signatures`` adds a check of
    every transaction's signature (the verify pool's two threads), which the node
    does not do for a certified block (docs/state-sync.md, "Block replay")."""
    src = ChainStore.open(source)
    raw = [src.block_by_height(h) for h in range(1, src.tip_height() + 1)]
    src.close()
    config = ConsensusConfig(chain_id=genesis.chain_id, n=4)
    verifier = ValidatorVerifier(genesis.validator_public_keys())
    with ThreadPoolExecutor(2) as pool:
        rules = TxPayloadRules(genesis.chain_id, executor=pool)
        dst = ChainStore.open(target, create=True)
        applier = BlockApplier(dst, genesis, Ledger(), rules)
        started = time.perf_counter()
        cpu = time.process_time()
        txs = blocks = 0
        for item in raw:
            if item is None:
                raise RuntimeError(f"block {blocks + 1} missing from the source chain")
            block = Block.from_bytes(item).committed()
            for _ in ("block sync", "replica"):
                if rules.payload_root(block.payload) != block.proposal.payload_root:
                    raise RuntimeError(f"block {block.proposal.height}: payload root")
                verify_commit_certificate(config, verifier, block.proposal, block.certificate)
            if verify_signatures and not rules.payload_valid(block.payload):
                raise RuntimeError(f"block {block.proposal.height}: bad payload")
            applier.apply(block)
            txs += len(block.payload)
            blocks += 1
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        dst.close()
    return {
        "blocks": blocks,
        "txs": txs,
        "seconds": round(seconds, 2),
        "tx_per_s": round(txs / seconds),
        "cpu_seconds": round(cpu_s, 2),
    }


def _state_sync(
    genesis: Genesis,
    signers: list[KeySigner],
    source: Path,
    target: Path,
    chunk_bytes: int,
    tip_digests: BlockDigests,
) -> dict[str, Any]:
    src = ChainStore.open(source)
    tip = src.tip_height()
    block = Block.from_bytes(src.block_by_height(tip) or b"")
    root = bytes.fromhex(block.header.state_root)
    # the serving side: cut the state at the tip into chunks
    started = time.perf_counter()
    with src.snapshot() as view:
        pending = pending_manifest(
            view, genesis.chain_id, block, tip_digests, genesis_root(genesis)
        )
        chunks = list(cut_chunks(view.state_iter(b""), chunk_bytes))
    cut_seconds = time.perf_counter() - started
    src.close()
    checkpoint = [
        CheckpointSig(i, s.sign(Checkpoint(tip, root, i).signing_bytes(genesis.chain_id)))
        for i, s in enumerate(signers[:3])
    ]
    manifest = msgspec.structs.replace(
        pending, checkpoint=checkpoint, chunks=[info for info, _ in chunks]
    )
    rules = TxPayloadRules(genesis.chain_id)
    # the joining side: check the manifest, then every chunk, and write it
    dst = ChainStore.open(target, create=True)
    started = time.perf_counter()
    cpu = time.process_time()
    snapshot = verify_manifest(
        manifest,
        genesis.chain_id,
        genesis.validator_public_keys(),
        max_chunk_bytes=2 * chunk_bytes,
        payload_root=rules.payload_root,
    )
    manifest_seconds = time.perf_counter() - started
    entries = 0
    for index, (_, data) in enumerate(chunks):
        restored = verify_chunk(snapshot, index, data)
        dst.write_restored_state(tip, restored)
        entries += len(restored)
    dst.finish_restore(
        tip,
        bytes.fromhex(block.hash),
        block.to_bytes(),
        list(block.tx_hashes),
        [(STATE_HASH_KEY, StateHash.from_bytes(manifest.state_hash).to_state_value())],
    )
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    dst.close()
    return {
        "height": tip,
        "state_entries": entries,
        "state_bytes": sum(info.size for info, _ in chunks),
        "chunks": len(chunks),
        "cut_seconds": round(cut_seconds, 2),
        "manifest_seconds": round(manifest_seconds, 3),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_s, 2),
    }


def run(n_txs: int, block_txs: int, chunk_bytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hygeia-bench-sync-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        genesis, signers, source, tip_digests = _build(root, n_txs, block_txs)
        build_seconds = time.perf_counter() - started
        replay = _replay(genesis, source, root / "replayed")
        shutil.rmtree(root / "replayed")
        replay_checked = _replay(genesis, source, root / "replayed", verify_signatures=True)
        snap = _state_sync(genesis, signers, source, root / "synced", chunk_bytes, tip_digests)
        return {
            "machine": {"cpus": os.cpu_count()},
            "txs": n_txs,
            "block_txs": block_txs,
            "build_seconds": round(build_seconds, 1),
            "replay": replay,
            "replay_verifying_signatures": replay_checked,
            "state_sync": snap,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--txs", type=int, default=1_000_000)
    parser.add_argument("--block-txs", type=int, default=500)
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20)
    args = parser.parse_args()
    print(json.dumps(run(args.txs, args.block_txs, args.chunk_bytes), indent=2, default=str))


if __name__ == "__main__":
    main()
