"""Snapshot manifests and chunks (node/statesync/manifest.py), checked against a
genuine snapshot built here: a state of a few hundred entries, its LtHash, the
state root of checkpoint height c derived from it, block c with a commit
certificate naming that root, a quorum's CHECKPOINT(c, root) signatures and the
state cut into several chunks.

It checks that such a manifest verifies from the chain id and genesis's keys
alone (epoch 0, and a height of epoch 1 through an epoch link), that every chunk
verifies and the chunks together are the state, that the manifest survives an
encode/decode round trip, and that every forgery is refused with
``SnapshotError`` naming why: a state whose root is not certified, changed
root parts, short/repeated/unknown/foreign checkpoint signatures, a block of
another height, root, chain or with a short certificate, wrong chain or format,
chunk shares that do not add up, chunk ranges out of order, chunk bytes that do
not match, a forged chunk entry in the manifest, ``meta/state-hash`` in a chunk,
keys not increasing inside a chunk, and the epoch claims of an epoch-1 snapshot.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from consensus.epochs import signing_domain
from consensus.messages import Checkpoint, Commit, CommittedBlock, Proposal
from node.core.block import Block, derive_block
from node.core.codec import canonical_json
from node.core.epoch_link import attestation_bytes, link_json
from node.core.keys import KeySigner, SigningKey, key_from_seed, sign
from node.core.state_root import BlockDigests, chain_state_root
from node.core.tx import TxPayloadRules
from node.ledger.state_hash import EMPTY, STATE_HASH_BYTES, STATE_HASH_KEY, StateHash
from node.statesync.manifest import (
    MANIFEST_FORMAT,
    CheckpointSig,
    ChunkInfo,
    Manifest,
    SnapshotError,
    VerifiedSnapshot,
    cut_chunks,
    decode_manifest,
    encode_manifest,
    verify_chunk,
    verify_manifest,
)
from tests.unit.chain_helpers import (
    CHAIN,
    PUBKEYS,
    VALIDATOR_KEYS,
    make_committed,
    make_txs,
)

HEIGHT = 16
CHUNK_BYTES = 1024
PREV_ROOT = hashlib.sha256(b"root of height 15").digest()
WRITES = hashlib.sha256(b"writes of height 16").digest()
RESULTS = hashlib.sha256(b"results of height 16").digest()
PARENT = hashlib.sha256(b"block 15").hexdigest()
PAYLOAD_ROOT = TxPayloadRules(CHAIN).payload_root

Entries = list[tuple[bytes, bytes]]


def make_state(n: int = 300, seed: int = 5) -> Entries:
    """``n`` entries in key order, on both sides of ``meta/state-hash`` (not included)."""
    rng = random.Random(seed)
    keys = [b"acct/%04d" % i for i in range(n // 2)] + [b"rec/%04d" % i for i in range(n - n // 2)]
    return sorted((k, rng.randbytes(rng.randrange(1, 40))) for k in keys)


STATE = make_state()


# ------------------------------------------------------------------ building
def checkpoint_sigs(
    height: int,
    root: bytes,
    keys: Sequence[SigningKey],
    signers: Sequence[int],
    domain: str,
) -> list[CheckpointSig]:
    return [
        CheckpointSig(i, KeySigner(keys[i]).sign(Checkpoint(height, root, i).signing_bytes(domain)))
        for i in signers
    ]


def genesis_block(height: int, state_root: bytes, signers: Sequence[int] = (0, 1, 2)) -> Block:
    """Block ``height`` committed by genesis's validators (chain_helpers)."""
    committed = make_committed(make_txs(3), height=height, signers=signers)
    return derive_block(committed, PARENT, state_root)


def epoch_block(
    height: int,
    state_root: bytes,
    keys: Sequence[SigningKey],
    domain: str,
    signers: Sequence[int],
) -> Block:
    """Block ``height`` committed by ``signers`` of ``keys`` signing under ``domain``."""
    payload = tuple(t.wire for t in make_txs(3))
    proposal = Proposal(CHAIN, height, 1_767_225_600_000 + height, 1, PAYLOAD_ROOT(payload))
    cert = []
    for i in signers:
        c = Commit(0, height, proposal.digest(), i)
        cert.append(msgspec.structs.replace(c, sig=sign(keys[i], c.signing_bytes(domain))))
    return derive_block(CommittedBlock(proposal, payload, tuple(cert)), PARENT, state_root)


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    chunks: list[bytes]
    root: bytes


def build(
    entries: Entries = STATE,
    *,
    height: int = HEIGHT,
    epoch: int = 0,
    keys: Sequence[SigningKey] = VALIDATOR_KEYS,
    domain: str = CHAIN,
    signers: Sequence[int] = (0, 1, 2),
    epochs: bytes = b"[]",
    block: Block | None = None,
) -> Snapshot:
    """A genuine snapshot of ``entries`` at ``height``, certified by ``signers`` of ``keys``."""
    state_hash = StateHash.of(entries)
    root = chain_state_root(PREV_ROOT, height, BlockDigests(WRITES, state_hash.digest(), RESULTS))
    cut = list(cut_chunks(entries, CHUNK_BYTES))
    if block is None:
        if keys is VALIDATOR_KEYS and domain == CHAIN:
            block = genesis_block(height, root, signers)
        else:
            block = epoch_block(height, root, keys, domain, signers)
    manifest = Manifest(
        format=MANIFEST_FORMAT,
        chain_id=CHAIN,
        height=height,
        block=block.to_bytes(),
        prev_state_root=PREV_ROOT,
        writes_digest=WRITES,
        results_root=RESULTS,
        state_hash=state_hash.to_bytes(),
        epoch=epoch,
        checkpoint=checkpoint_sigs(height, root, keys, signers, domain),
        epochs=epochs,
        chunks=[info for info, _ in cut],
    )
    return Snapshot(manifest, [data for _, data in cut], root)


GOOD = build()


def check(
    manifest: Manifest, chain_id: str = CHAIN, max_chunk_bytes: int = CHUNK_BYTES
) -> VerifiedSnapshot:
    return verify_manifest(
        manifest, chain_id, PUBKEYS, max_chunk_bytes=max_chunk_bytes, payload_root=PAYLOAD_ROOT
    )


def refused(manifest: Manifest, match: str, chain_id: str = CHAIN) -> None:
    with pytest.raises(SnapshotError, match=match):
        check(manifest, chain_id)


def tamper(**changes: Any) -> Manifest:
    return msgspec.structs.replace(GOOD.manifest, **changes)


def encode_chunk(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    return msgspec.msgpack.encode(list(entries))


def forge_chunk(
    index: int,
    content: Entries,
    *,
    share: bytes | None = None,
    **info_changes: Any,
) -> tuple[Manifest, bytes]:
    """The good manifest with chunk ``index``'s entry rewritten to describe ``content``
    (right SHA-256, size, count and keys) but with ``share`` (default: the original
    share), then ``info_changes``; and the bytes of that chunk."""
    data = encode_chunk(content)
    info = ChunkInfo(
        sha256=hashlib.sha256(data).digest(),
        state_hash=GOOD.manifest.chunks[index].state_hash if share is None else share,
        entries=len(content),
        first_key=content[0][0],
        last_key=content[-1][0],
        size=len(data),
    )
    info = msgspec.structs.replace(info, **info_changes)
    chunks = list(GOOD.manifest.chunks)
    chunks[index] = info
    return tamper(chunks=chunks), data


def chunk_entries(index: int) -> Entries:
    return list(msgspec.msgpack.decode(GOOD.chunks[index], type=list[tuple[bytes, bytes]]))


# ------------------------------------------------------------------ the genuine snapshot
def test_the_snapshot_is_cut_into_several_bounded_chunks() -> None:
    infos = GOOD.manifest.chunks
    assert len(infos) >= 5
    assert sum(i.entries for i in infos) == len(STATE)
    for info, data in zip(infos, GOOD.chunks, strict=True):
        assert 1 <= info.size == len(data) <= CHUNK_BYTES
        assert info.sha256 == hashlib.sha256(data).digest()
    total = EMPTY
    for info in infos:
        total = total + StateHash.from_bytes(info.state_hash)
    assert total == StateHash.of(STATE)


def test_cut_chunks_skips_the_state_hash_key() -> None:
    with_meta = sorted([*STATE, (STATE_HASH_KEY, StateHash.of(STATE).to_state_value())])
    assert list(cut_chunks(with_meta, CHUNK_BYTES)) == list(cut_chunks(STATE, CHUNK_BYTES))
    assert list(cut_chunks([], CHUNK_BYTES)) == []


def test_cut_chunks_puts_an_oversized_entry_alone() -> None:
    big = [(b"a", b"x" * 10), (b"b", b"y" * 3000), (b"c", b"z" * 10)]
    infos = [info for info, _ in cut_chunks(big, CHUNK_BYTES)]
    assert [i.entries for i in infos] == [1, 1, 1]
    assert infos[1].size > CHUNK_BYTES


def test_verify_manifest_passes() -> None:
    snap = check(GOOD.manifest)
    assert snap.height == HEIGHT
    assert snap.state_root == GOOD.root
    assert snap.block.height == HEIGHT
    assert snap.block.header.state_root == GOOD.root.hex()
    assert snap.epoch.number == 0 and snap.epoch.validators == tuple(PUBKEYS)
    assert [e.number for e in snap.epochs] == [0]
    assert snap.manifest is GOOD.manifest


def test_every_chunk_verifies_and_together_they_are_the_state() -> None:
    snap = check(GOOD.manifest)
    restored: Entries = []
    for index, data in enumerate(GOOD.chunks):
        entries = verify_chunk(snap, index, data)
        assert len(entries) == GOOD.manifest.chunks[index].entries
        restored += entries
    assert restored == STATE


def test_four_checkpoint_signatures_and_any_quorum_pass() -> None:
    assert check(build(signers=(0, 1, 2, 3)).manifest).state_root == GOOD.root
    assert check(build(signers=(3, 1, 2)).manifest).state_root == GOOD.root


def test_encode_decode_round_trip() -> None:
    data = encode_manifest(GOOD.manifest)
    again = decode_manifest(data)
    assert again == GOOD.manifest
    assert encode_manifest(again) == data
    assert check(again).state_root == GOOD.root


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"\xc1", encode_manifest(GOOD.manifest)[:-7], b"\x91\x01"]
)
def test_malformed_manifest_bytes(data: bytes) -> None:
    with pytest.raises(SnapshotError, match="malformed manifest"):
        decode_manifest(data)


# ------------------------------------------------------------------ forged state or root
def test_forged_state_with_the_original_signatures_is_refused() -> None:
    """A state whose root is not certified: one value changed, chunks, LtHash, root
    and even block c's header recomputed; only the checkpoint signatures are the
    genuine ones, and they are over the genuine root."""
    forged_entries = list(STATE)
    forged_entries[37] = (forged_entries[37][0], b"stolen")
    forged = build(forged_entries)
    assert forged.root != GOOD.root
    manifest = msgspec.structs.replace(forged.manifest, checkpoint=GOOD.manifest.checkpoint)
    refused(manifest, r"validator 0 of epoch 0 did not sign checkpoint 16 .*forged state")


def test_forged_state_with_an_added_entry_is_refused() -> None:
    forged = build(sorted([*STATE, (b"acct/9999", b"minted")]))
    manifest = msgspec.structs.replace(forged.manifest, checkpoint=GOOD.manifest.checkpoint)
    refused(manifest, "did not sign checkpoint 16 with this state root")


def test_changed_state_hash_is_refused() -> None:
    other = StateHash.of(STATE[1:]).to_bytes()
    refused(tamper(state_hash=other), "did not sign checkpoint 16 with this state root")


def test_changed_prev_state_root_is_refused() -> None:
    refused(
        tamper(prev_state_root=hashlib.sha256(b"another history").digest()),
        "did not sign checkpoint 16 with this state root",
    )


def test_changed_writes_digest_is_refused() -> None:
    refused(tamper(writes_digest=bytes(32)), "did not sign checkpoint 16 with this state root")
    refused(tamper(results_root=bytes(32)), "did not sign checkpoint 16 with this state root")


def test_changed_height_is_refused() -> None:
    refused(tamper(height=HEIGHT + 1), "did not sign checkpoint 17")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"prev_state_root": bytes(31)}, "must be 32 bytes"),
        ({"writes_digest": bytes(33)}, "must be 32 bytes"),
        ({"results_root": bytes(31)}, "must be 32 bytes"),
        ({"state_hash": bytes(STATE_HASH_BYTES - 2)}, f"state_hash must be {STATE_HASH_BYTES}"),
        ({"height": 0}, "snapshot height 0 < 1"),
    ],
)
def test_malformed_fields_are_refused(changes: dict[str, Any], match: str) -> None:
    refused(tamper(**changes), match)


# ------------------------------------------------------------------ checkpoint signatures
def test_too_few_checkpoint_signatures() -> None:
    refused(tamper(checkpoint=GOOD.manifest.checkpoint[:2]), "has 2 signatures, a quorum is 3")
    refused(tamper(checkpoint=[]), "has 0 signatures, a quorum is 3")


def test_repeated_checkpoint_signer() -> None:
    sigs = GOOD.manifest.checkpoint
    refused(tamper(checkpoint=[sigs[0], sigs[1], sigs[1]]), "signer 1: unknown or repeated")


@pytest.mark.parametrize("index", [4, 100, -1])
def test_checkpoint_signer_out_of_range(index: int) -> None:
    sigs = [*GOOD.manifest.checkpoint[:2], CheckpointSig(index, bytes(64))]
    refused(tamper(checkpoint=sigs), f"signer {index}: unknown or repeated")


def test_checkpoint_signatures_under_another_chain_id() -> None:
    for domain in ("another-chain", signing_domain(CHAIN, 1)):
        sigs = checkpoint_sigs(HEIGHT, GOOD.root, VALIDATOR_KEYS, (0, 1, 2), domain)
        refused(tamper(checkpoint=sigs), "validator 0 of epoch 0 did not sign checkpoint")


def test_checkpoint_signature_of_another_validator() -> None:
    # validator 3's signature presented as validator 2's
    real = checkpoint_sigs(HEIGHT, GOOD.root, VALIDATOR_KEYS, (3,), CHAIN)[0]
    sigs = [*GOOD.manifest.checkpoint[:2], CheckpointSig(2, real.sig)]
    refused(tamper(checkpoint=sigs), "validator 2 of epoch 0 did not sign")


def test_checkpoint_signature_by_an_outsider() -> None:
    outsider = [key_from_seed(b"\x42" * 32)] * 4
    sigs = [
        *GOOD.manifest.checkpoint[:2],
        *checkpoint_sigs(HEIGHT, GOOD.root, outsider, (3,), CHAIN),
    ]
    refused(tamper(checkpoint=sigs), "validator 3 of epoch 0 did not sign")


# ------------------------------------------------------------------ block c
def test_block_of_another_height() -> None:
    block = genesis_block(HEIGHT + 1, GOOD.root)
    refused(tamper(block=block.to_bytes()), f"snapshot block is {HEIGHT + 1} of 'hygeia-test'")


def test_block_naming_another_state_root() -> None:
    block = genesis_block(HEIGHT, hashlib.sha256(b"other root").digest())
    refused(tamper(block=block.to_bytes()), "block's state root is not the certified one")


def test_block_certificate_short_of_a_quorum() -> None:
    block = genesis_block(HEIGHT, GOOD.root, signers=(0, 1))
    refused(tamper(block=block.to_bytes()), "commit certificate at height 16: 2 signatures, 3")


def test_block_certificate_signed_under_another_domain() -> None:
    block = epoch_block(HEIGHT, GOOD.root, VALIDATOR_KEYS, "another-chain", (0, 1, 2))
    refused(tamper(block=block.to_bytes()), "commit certificate at height 16: bad signature")


def test_block_with_other_transactions_than_certified() -> None:
    block = Block.from_bytes(GOOD.manifest.block)
    other = tuple(t.wire for t in make_txs(4))[1:]
    forged = Block(block.header, other, block.tx_hashes, block.certificate)
    refused(tamper(block=forged.to_bytes()), "transactions are not the certified ones")


def test_block_of_another_chain() -> None:
    committed = make_committed(make_txs(2, "other-chain"), height=HEIGHT, chain="other-chain")
    block = derive_block(committed, PARENT, GOOD.root)
    refused(tamper(block=block.to_bytes()), "snapshot block is 16 of 'other-chain'")


def test_block_bytes_corrupt() -> None:
    refused(tamper(block=b"not a block"), "snapshot block: ")


# ------------------------------------------------------------------ chain and format
def test_wrong_chain_id() -> None:
    refused(GOOD.manifest, "snapshot of chain 'hygeia-test', not 'another-chain'", "another-chain")
    refused(tamper(chain_id="another-chain"), "snapshot of chain 'another-chain'")


def test_wrong_format() -> None:
    # /1 predates the results root in the state root: its roots would not match
    refused(tamper(format="hygeia-snapshot/1"), "unsupported snapshot format 'hygeia-snapshot/1'")


def test_wrong_genesis_keys() -> None:
    with pytest.raises(SnapshotError, match="did not sign checkpoint"):
        verify_manifest(
            GOOD.manifest,
            CHAIN,
            list(reversed(PUBKEYS)),
            max_chunk_bytes=CHUNK_BYTES,
            payload_root=PAYLOAD_ROOT,
        )


# ------------------------------------------------------------------ the chunk list
def test_chunk_shares_that_do_not_add_up() -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[0] = msgspec.structs.replace(chunks[0], state_hash=chunks[1].state_hash)
    refused(tamper(chunks=chunks), "shares do not add up to the state hash")


def test_a_chunk_left_out() -> None:
    refused(tamper(chunks=GOOD.manifest.chunks[:-1]), "shares do not add up")


def test_no_chunks() -> None:
    refused(tamper(chunks=[]), "chunks, not 0")


def test_chunks_out_of_order() -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[1], chunks[2] = chunks[2], chunks[1]
    refused(tamper(chunks=chunks), "chunk 2: key range out of order")


def test_overlapping_chunk_ranges() -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[2] = msgspec.structs.replace(chunks[2], first_key=chunks[1].last_key)
    refused(tamper(chunks=chunks), "chunk 2: key range out of order")


def test_chunk_first_key_after_its_last() -> None:
    chunks = list(GOOD.manifest.chunks)
    c = chunks[3]
    chunks[3] = msgspec.structs.replace(c, first_key=c.last_key, last_key=c.first_key)
    refused(tamper(chunks=chunks), "chunk 3: key range out of order")


def test_repeated_chunk() -> None:
    chunks = list(GOOD.manifest.chunks)
    refused(tamper(chunks=[*chunks[:2], chunks[1], *chunks[2:]]), "chunk 2: key range out of order")


@pytest.mark.parametrize(
    "changes",
    [{"size": 0}, {"size": CHUNK_BYTES + 1}, {"entries": 0}, {"sha256": bytes(31)}],
)
def test_chunk_bounds(changes: dict[str, Any]) -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[1] = msgspec.structs.replace(chunks[1], **changes)
    refused(tamper(chunks=chunks), "chunk 1: size, entry count or digest out of bounds")


def test_chunk_larger_than_the_verifier_takes() -> None:
    with pytest.raises(SnapshotError, match="chunk 0: size"):
        check(GOOD.manifest, max_chunk_bytes=100)


def test_chunk_key_too_long() -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[-1] = msgspec.structs.replace(chunks[-1], last_key=b"z" * 4097)
    refused(tamper(chunks=chunks), "key longer than 4096 bytes")


def test_chunk_share_of_the_wrong_length() -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[0] = msgspec.structs.replace(chunks[0], state_hash=bytes(10))
    refused(tamper(chunks=chunks), "chunk 0: a state hash is 2048 bytes, not 10")


# ------------------------------------------------------------------ one chunk
def test_chunk_with_bytes_changed() -> None:
    snap = check(GOOD.manifest)
    data = bytearray(GOOD.chunks[2])
    data[-1] ^= 1
    with pytest.raises(SnapshotError, match="chunk 2: bytes differ from the manifest's digest"):
        verify_chunk(snap, 2, bytes(data))
    with pytest.raises(SnapshotError, match="chunk 2: bytes differ"):
        verify_chunk(snap, 2, GOOD.chunks[2] + b"\x00")
    with pytest.raises(SnapshotError, match="chunk 2: bytes differ"):
        verify_chunk(snap, 2, GOOD.chunks[3])  # another chunk's (genuine) bytes


def test_forged_chunk_entry_with_the_original_share_fails_on_the_share() -> None:
    """The manifest's entry for chunk 1 describes other bytes (its SHA-256, size, count
    and keys right) but keeps the genuine share, so the shares still add up: the
    manifest passes, and the chunk fails on its share."""
    entries = chunk_entries(1)
    entries[3] = (entries[3][0], b"forged value")
    manifest, data = forge_chunk(1, entries)
    snap = check(manifest)
    with pytest.raises(SnapshotError, match="chunk 1: its entries do not hash to its share"):
        verify_chunk(snap, 1, data)
    # the genuine chunk 1 no longer matches the forged entry's digest
    with pytest.raises(SnapshotError, match="chunk 1: bytes differ"):
        verify_chunk(snap, 1, GOOD.chunks[1])


def test_forged_chunk_entry_with_its_own_share_fails_on_the_sum() -> None:
    entries = chunk_entries(1)
    entries[3] = (entries[3][0], b"forged value")
    manifest, _ = forge_chunk(1, entries, share=StateHash.of(entries).to_bytes())
    refused(manifest, "shares do not add up to the state hash")


def test_chunk_with_an_entry_dropped() -> None:
    entries = chunk_entries(4)
    del entries[2]
    manifest, data = forge_chunk(4, entries)
    with pytest.raises(SnapshotError, match="chunk 4: its entries do not hash to its share"):
        verify_chunk(check(manifest), 4, data)


def test_chunk_holding_the_state_hash_key() -> None:
    """``meta/state-hash`` is not an item of the LtHash, so the share does not catch it."""
    index = max(i for i, c in enumerate(GOOD.manifest.chunks) if c.first_key < STATE_HASH_KEY)
    entries = sorted([*chunk_entries(index), (STATE_HASH_KEY, b'"00"')])
    manifest, data = forge_chunk(index, entries)
    snap = check(manifest)  # the share is unchanged and the ranges still in order
    with pytest.raises(SnapshotError, match=f"chunk {index}: holds meta/state-hash"):
        verify_chunk(snap, index, data)


def test_chunk_keys_not_increasing() -> None:
    entries = chunk_entries(2)
    entries[1], entries[2] = entries[2], entries[1]
    manifest, data = forge_chunk(2, entries)
    with pytest.raises(SnapshotError, match="chunk 2: keys not strictly increasing"):
        verify_chunk(check(manifest), 2, data)


def test_chunk_with_a_repeated_key() -> None:
    entries = chunk_entries(2)
    entries.insert(2, entries[1])
    manifest, data = forge_chunk(2, entries)
    with pytest.raises(SnapshotError, match="chunk 2: keys not strictly increasing"):
        verify_chunk(check(manifest), 2, data)


def test_chunk_with_keys_other_than_the_manifest_says() -> None:
    entries = chunk_entries(0)
    manifest, data = forge_chunk(0, entries, first_key=b"\x00")
    with pytest.raises(SnapshotError, match="chunk 0: first or last key differs"):
        verify_chunk(check(manifest), 0, data)


def test_chunk_with_another_entry_count_than_the_manifest_says() -> None:
    entries = chunk_entries(0)
    manifest, data = forge_chunk(0, entries, entries=len(entries) + 1)
    with pytest.raises(SnapshotError, match=f"chunk 0: {len(entries)} entries, manifest says"):
        verify_chunk(check(manifest), 0, data)


@pytest.mark.parametrize("data", [b"\xc1", msgspec.msgpack.encode([["a", "b"]]), b"\x90"])
def test_malformed_chunk(data: bytes) -> None:
    chunks = list(GOOD.manifest.chunks)
    chunks[0] = msgspec.structs.replace(
        chunks[0], sha256=hashlib.sha256(data).digest(), size=len(data)
    )
    snap = check(tamper(chunks=chunks))
    with pytest.raises(SnapshotError, match=r"chunk 0: (malformed|0 entries)"):
        verify_chunk(snap, 0, data)


# ------------------------------------------------------------------ epoch 1
# Epoch 1: five new validators from height 9, attested by a quorum of genesis's four.
EPOCH1_KEYS = [key_from_seed(hashlib.sha256(b"snapshot-epoch-1-%d" % i).digest()) for i in range(5)]
EPOCH1_FIRST = 9
EPOCH1_DOMAIN = signing_domain(CHAIN, 1)


def make_link(first_height: int = EPOCH1_FIRST, indices: Sequence[int] = (0, 1, 2)) -> bytes:
    validators = [bytes(k.verify_key).hex() for k in EPOCH1_KEYS]
    message = attestation_bytes(CHAIN, 1, first_height, validators)
    sigs = [(i, sign(VALIDATOR_KEYS[i], message).hex()) for i in indices]
    return canonical_json([link_json(1, first_height, validators, sigs)])


LINKS = make_link()


def epoch1_snapshot(**kw: Any) -> Snapshot:
    options: dict[str, Any] = {
        "epoch": 1,
        "keys": EPOCH1_KEYS,
        "domain": EPOCH1_DOMAIN,
        "signers": (0, 1, 2, 3),  # a quorum of five
        "epochs": LINKS,
    }
    options.update(kw)
    return build(**options)


EPOCH1 = epoch1_snapshot()


def test_epoch_1_snapshot_passes() -> None:
    snap = check(EPOCH1.manifest)
    assert snap.height == HEIGHT and snap.state_root == EPOCH1.root == GOOD.root
    assert snap.epoch.number == 1 and snap.epoch.first_height == EPOCH1_FIRST
    assert snap.epoch.validators == tuple(bytes(k.verify_key) for k in EPOCH1_KEYS)
    assert [e.number for e in snap.epochs] == [0, 1]
    for index, data in enumerate(EPOCH1.chunks):
        verify_chunk(snap, index, data)


def test_epoch_1_snapshot_without_links() -> None:
    manifest = msgspec.structs.replace(EPOCH1.manifest, epochs=b"[]")
    refused(manifest, "height 16 is certified by epoch 0, the manifest says 1")


def test_epoch_1_snapshot_claiming_epoch_0() -> None:
    manifest = msgspec.structs.replace(EPOCH1.manifest, epoch=0)
    refused(manifest, "height 16 is certified by epoch 1, the manifest says 0")


def test_epoch_1_snapshot_with_three_of_five() -> None:
    manifest = msgspec.structs.replace(EPOCH1.manifest, checkpoint=EPOCH1.manifest.checkpoint[:3])
    refused(manifest, "has 3 signatures, a quorum is 4")


def test_epoch_1_signer_index_beyond_genesis_size_is_known() -> None:
    snapshot = epoch1_snapshot(signers=(4, 3, 2, 1))
    assert check(snapshot.manifest).epoch.number == 1


def test_genesis_set_cannot_certify_a_height_of_epoch_1() -> None:
    old = build(epoch=1, epochs=LINKS)  # genesis's keys under the chain id
    refused(old.manifest, "validator 0 of epoch 1 did not sign checkpoint 16")
    # nor under epoch 1's domain
    old = build(
        epoch=1,
        epochs=LINKS,
        domain=EPOCH1_DOMAIN,
        block=genesis_block(HEIGHT, GOOD.root),
    )
    refused(old.manifest, "validator 0 of epoch 1 did not sign checkpoint 16")


def test_epoch_1_keys_under_the_genesis_domain() -> None:
    snapshot = epoch1_snapshot(domain=CHAIN)
    refused(snapshot.manifest, "validator 0 of epoch 1 did not sign checkpoint 16")


def test_epoch_1_checkpoint_with_a_genesis_certified_block() -> None:
    # the checkpoint is right, block c's certificate is by the wrong set
    manifest = msgspec.structs.replace(
        EPOCH1.manifest, block=genesis_block(HEIGHT, GOOD.root).to_bytes()
    )
    refused(manifest, "snapshot block 16: commit certificate at height 16")


def test_epoch_1_link_short_of_a_quorum() -> None:
    manifest = msgspec.structs.replace(EPOCH1.manifest, epochs=make_link(indices=(0, 1)))
    refused(manifest, "epoch link: epochs\\[0\\]: epoch 1 is attested by 2 validators")


@pytest.mark.parametrize("epochs", [b"", b"{}", b"\xff", b"[{}]", b"null"])
def test_malformed_epoch_links(epochs: bytes) -> None:
    refused(msgspec.structs.replace(EPOCH1.manifest, epochs=epochs), "epoch link: ")


def test_height_before_a_later_epoch_is_genesis_certified() -> None:
    """Links past the snapshot's height do not change which set certified it."""
    snapshot = build(epochs=make_link(first_height=HEIGHT + 1))
    snap = check(snapshot.manifest)
    assert snap.epoch.number == 0 and len(snap.epochs) == 2
    refused(
        msgspec.structs.replace(snapshot.manifest, epoch=1),
        "certified by epoch 0, the manifest says 1",
    )


def test_epoch_1_from_the_snapshot_height_itself() -> None:
    snapshot = epoch1_snapshot(epochs=make_link(first_height=HEIGHT))
    assert check(snapshot.manifest).epoch.number == 1


# ------------------------------------------------------------------ block c's uncertified header
def test_block_header_view_other_than_its_certificate() -> None:
    block = Block.from_bytes(GOOD.manifest.block)
    assert {c.view for c in block.certificate} == {0}
    header = msgspec.structs.replace(block.header, view=5)
    forged = Block(header, block.txs, block.tx_hashes, block.certificate)
    refused(tamper(block=forged.to_bytes()), "view")
