"""Snapshots of the app state: the manifest, the chunks, and how a joining node
checks both before it applies anything.

A snapshot is the whole app state at a checkpoint height c, cut into chunks of
entries in key order. Its *manifest* says what the snapshot is and why to believe
it::

    Manifest(format, chain_id, height c,
             block          block c's bytes, with its commit certificate
             prev_state_root, writes_digest, results_root, state_hash
                            root(c-1), the digest of block c's writes, its
                            results root and the LtHash of the state at c: with
                            c they give root(c)
                            (``node.ledger.state.chain_state_root``)
             epoch, checkpoint
                            the epoch whose set certified height c, and a quorum
                            of its validators' CHECKPOINT(c, root(c)) signatures
             epochs         the links from genesis to that epoch (canonical JSON,
                            ``node/core/epoch_link.py``)
             chunks         per chunk: SHA-256, LtHash share, entry count, first
                            and last key, size)

``verify_manifest`` needs only the chain id and genesis's validator keys (and the
payload rule of transactions, to check block c's). It walks
the links from genesis, derives root(c) from the three values, checks that a
quorum of the epoch's validators signed CHECKPOINT(c, root(c)) under the epoch's
signing domain, that block c is certified by the same set and names root(c),
and that the chunks' key ranges are increasing and their LtHash shares add up to
the state hash. Only then is a chunk fetched; ``verify_chunk`` checks each one
(size, SHA-256, keys in order and in range, its entries' LtHash equal to its
share) before it is written. A chunk that matches its share is the true one:
the shares add up to the certified hash, so another content would be a
collision of LtHash (``node/ledger/state_hash.py``). A peer that serves anything
else is refused and penalised.

The chunk encoding is a msgpack array of ``[key, value]`` byte pairs, keys
strictly increasing. ``meta/state-hash`` is not in the chunks: the joining node
writes it from the manifest's state hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from consensus.config import ConsensusConfig
from consensus.epochs import Epoch, EpochSchedule, signing_domain
from consensus.messages import Checkpoint
from consensus.quorum import CertificateError, verify_commit_certificate
from node.core.block import Block, BlockError
from node.core.epoch_link import EpochLinkError, verify_links
from node.core.keys import ValidatorVerifier, verify
from node.core.state_root import BlockDigests, chain_state_root
from node.ledger.state_hash import EMPTY, STATE_HASH_BYTES, STATE_HASH_KEY, StateHash
from storage.base import ChainView

__all__ = [
    "MANIFEST_FORMAT",
    "MAX_CHUNKS",
    "CheckpointSig",
    "ChunkInfo",
    "Manifest",
    "SnapshotError",
    "VerifiedSnapshot",
    "cut_chunks",
    "decode_manifest",
    "encode_manifest",
    "pending_manifest",
    "verify_chunk",
    "verify_manifest",
]

MANIFEST_FORMAT: Final = "hygeia-snapshot/2"  # /2: state root v3 (results root)
MAX_CHUNKS: Final = 1 << 20  # a bound on hostile input: 1 MiB chunks up to a TiB of state
MAX_KEY_BYTES: Final = 4096


class SnapshotError(ValueError):
    """A manifest or chunk that does not prove what it claims; the message says why."""


class ChunkInfo(msgspec.Struct, frozen=True, array_like=True):
    """What the manifest says of one chunk."""

    sha256: bytes
    state_hash: bytes  # the LtHash of its entries (2048 bytes)
    entries: int
    first_key: bytes
    last_key: bytes
    size: int


class CheckpointSig(msgspec.Struct, frozen=True, array_like=True):
    """One validator's signature of CHECKPOINT(c, root(c)) (its index in the epoch)."""

    validator: int
    sig: bytes


class Manifest(msgspec.Struct, frozen=True, array_like=True):
    format: str
    chain_id: str
    height: int
    block: bytes
    prev_state_root: bytes
    writes_digest: bytes
    results_root: bytes
    state_hash: bytes
    epoch: int
    checkpoint: list[CheckpointSig]
    epochs: bytes  # canonical JSON of the epoch links (node/core/epoch_link.py)
    chunks: list[ChunkInfo]


_encoder = msgspec.msgpack.Encoder()
_manifest_decoder = msgspec.msgpack.Decoder(Manifest)
_chunk_decoder = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])


def encode_manifest(manifest: Manifest) -> bytes:
    return _encoder.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    try:
        return _manifest_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"malformed manifest: {exc}") from None


def block_digests(m: Manifest, state_hash: StateHash | None = None) -> BlockDigests:
    """What block c adds to the state root chain, as the manifest gives it."""
    content = (state_hash or StateHash.from_bytes(m.state_hash)).digest()
    return BlockDigests(m.writes_digest, content, m.results_root)


@dataclass(frozen=True)
class VerifiedSnapshot:
    """A manifest that passed ``verify_manifest``, with what it established."""

    manifest: Manifest
    block: Block
    state_root: bytes
    epoch: Epoch
    epochs: list[Epoch]

    @property
    def height(self) -> int:
        return self.manifest.height


# ------------------------------------------------------------------ making
def pending_manifest(
    view: ChainView,
    chain_id: str,
    block: Block,
    digests: BlockDigests,
    genesis_root: bytes,
) -> Manifest:
    """The manifest of a snapshot of the state at ``block``'s height, as ``view`` holds
    it, before its chunks, checkpoint signatures and epoch links are known."""
    below = view.block_by_height(block.height - 1) if block.height > 1 else None
    prev_root = (
        bytes.fromhex(Block.from_bytes(below).header.state_root)
        if below is not None
        else genesis_root
    )
    return Manifest(
        format=MANIFEST_FORMAT,
        chain_id=chain_id,
        height=block.height,
        block=block.to_bytes(),
        prev_state_root=prev_root,
        writes_digest=digests.writes,
        results_root=digests.results,
        state_hash=StateHash.from_state_value(view.state_get(STATE_HASH_KEY)).to_bytes(),
        epoch=0,
        checkpoint=[],
        epochs=b"[]",
        chunks=[],
    )


def cut_chunks(
    entries: Iterable[tuple[bytes, bytes]], chunk_bytes: int
) -> Iterator[tuple[ChunkInfo, bytes]]:
    """The state's entries (in key order, ``meta/state-hash`` skipped) as chunks of
    about ``chunk_bytes`` encoded bytes each (at least one entry per chunk)."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0

    def flush() -> tuple[ChunkInfo, bytes]:
        data = _encoder.encode(batch)
        info = ChunkInfo(
            sha256=hashlib.sha256(data).digest(),
            state_hash=StateHash.of(batch).to_bytes(),
            entries=len(batch),
            first_key=batch[0][0],
            last_key=batch[-1][0],
            size=len(data),
        )
        return info, data

    for key, value in entries:
        if key == STATE_HASH_KEY:
            continue
        item = len(key) + len(value) + 12  # msgpack headers, at their widest
        if batch and size + item > chunk_bytes:
            yield flush()
            batch, size = [], 0
        batch.append((key, value))
        size += item
    if batch:
        yield flush()


# ------------------------------------------------------------------ checking
def verify_manifest(
    manifest: Manifest,
    chain_id: str,
    genesis_keys: Sequence[bytes],
    *,
    max_chunk_bytes: int,
    payload_root: Callable[[tuple[bytes, ...]], bytes],
) -> VerifiedSnapshot:
    """Check a manifest against genesis alone (see the module docstring); raises
    ``SnapshotError`` with the first reason it fails."""
    m = manifest
    if m.format != MANIFEST_FORMAT:
        raise SnapshotError(f"unsupported snapshot format {m.format!r}")
    if m.chain_id != chain_id:
        raise SnapshotError(f"snapshot of chain {m.chain_id!r}, not {chain_id!r}")
    if m.height < 1:
        raise SnapshotError(f"snapshot height {m.height} < 1")
    if len(m.prev_state_root) != 32 or len(m.writes_digest) != 32 or len(m.results_root) != 32:
        raise SnapshotError("prev_state_root, writes_digest and results_root must be 32 bytes")
    if len(m.state_hash) != STATE_HASH_BYTES:
        raise SnapshotError(f"state_hash must be {STATE_HASH_BYTES} bytes")

    # the validator set of height c, from genesis
    try:
        links = json.loads(m.epochs)
        epochs = verify_links(chain_id, genesis_keys, links)
    except (EpochLinkError, ValueError) as exc:
        raise SnapshotError(f"epoch link: {exc}") from None
    epoch = EpochSchedule(epochs).at(m.height)
    if m.epoch != epoch.number:
        raise SnapshotError(
            f"height {m.height} is certified by epoch {epoch.number}, the manifest says {m.epoch}"
        )
    config = ConsensusConfig(chain_id=chain_id, n=epoch.n, epoch=epoch.number)

    # root(c) from its parts, signed by a quorum of that set
    state_hash = StateHash.from_bytes(m.state_hash)
    root = chain_state_root(m.prev_state_root, m.height, block_digests(m, state_hash))
    seen: set[int] = set()
    domain = signing_domain(chain_id, epoch.number)
    for sig in m.checkpoint:
        if not 0 <= sig.validator < epoch.n or sig.validator in seen:
            raise SnapshotError(f"checkpoint signer {sig.validator}: unknown or repeated")
        seen.add(sig.validator)
        signed = Checkpoint(m.height, root, sig.validator).signing_bytes(domain)
        if not verify(epoch.validators[sig.validator], signed, sig.sig):
            raise SnapshotError(
                f"validator {sig.validator} of epoch {epoch.number} did not sign checkpoint "
                f"{m.height} with this state root (forged state or history)"
            )
    if len(seen) < config.quorum:
        raise SnapshotError(
            f"checkpoint {m.height} has {len(seen)} signatures, a quorum is {config.quorum}"
        )

    # block c: certified by the same set, naming the same root
    try:
        block = Block.from_bytes(m.block)
        committed = block.committed()
    except (BlockError, ValueError) as exc:
        raise SnapshotError(f"snapshot block: {exc}") from None
    if block.height != m.height or block.header.chain_id != chain_id:
        raise SnapshotError(f"snapshot block is {block.height} of {block.header.chain_id!r}")
    if block.header.state_root != root.hex():
        raise SnapshotError("snapshot block's state root is not the certified one")
    if payload_root(block.txs) != committed.proposal.payload_root:
        raise SnapshotError("snapshot block's transactions are not the certified ones")
    try:
        verify_commit_certificate(
            config,
            ValidatorVerifier(list(epoch.validators)),
            committed.proposal,
            committed.certificate,
        )
    except CertificateError as exc:
        raise SnapshotError(f"snapshot block {m.height}: {exc}") from None
    if committed.certificate[0].view != block.header.view:
        raise SnapshotError(
            f"snapshot block {m.height}: header view {block.header.view} is not its "
            f"certificate's view {committed.certificate[0].view}"
        )

    # the chunks: ordered disjoint key ranges whose shares add up to the state hash
    if not 1 <= len(m.chunks) <= MAX_CHUNKS:
        raise SnapshotError(f"a snapshot has 1..{MAX_CHUNKS} chunks, not {len(m.chunks)}")
    total = EMPTY
    previous_last: bytes | None = None
    for i, c in enumerate(m.chunks):
        if not 1 <= c.size <= max_chunk_bytes or c.entries < 1 or len(c.sha256) != 32:
            raise SnapshotError(f"chunk {i}: size, entry count or digest out of bounds")
        if len(c.first_key) > MAX_KEY_BYTES or len(c.last_key) > MAX_KEY_BYTES:
            raise SnapshotError(f"chunk {i}: key longer than {MAX_KEY_BYTES} bytes")
        if c.first_key > c.last_key or (previous_last is not None and c.first_key <= previous_last):
            raise SnapshotError(f"chunk {i}: key range out of order")
        try:
            total = total + StateHash.from_bytes(c.state_hash)
        except ValueError as exc:
            raise SnapshotError(f"chunk {i}: {exc}") from None
        previous_last = c.last_key
    if total != state_hash:
        raise SnapshotError("the chunks' state-hash shares do not add up to the state hash")
    return VerifiedSnapshot(m, block, root, epoch, epochs)


def verify_chunk(snapshot: VerifiedSnapshot, index: int, data: bytes) -> list[tuple[bytes, bytes]]:
    """The entries of chunk ``index`` if ``data`` is that chunk; ``SnapshotError`` if not."""
    info = snapshot.manifest.chunks[index]
    if len(data) != info.size or hashlib.sha256(data).digest() != info.sha256:
        raise SnapshotError(f"chunk {index}: bytes differ from the manifest's digest")
    try:
        entries = _chunk_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"chunk {index}: malformed ({exc})") from None
    if len(entries) != info.entries or not entries:
        raise SnapshotError(f"chunk {index}: {len(entries)} entries, manifest says {info.entries}")
    if entries[0][0] != info.first_key or entries[-1][0] != info.last_key:
        raise SnapshotError(f"chunk {index}: first or last key differs from the manifest")
    for (a, _), (b, _) in itertools.pairwise(entries):
        if not a < b:
            raise SnapshotError(f"chunk {index}: keys not strictly increasing")
    if any(k == STATE_HASH_KEY for k, _ in entries):
        raise SnapshotError(f"chunk {index}: holds {STATE_HASH_KEY.decode()}")
    if StateHash.of(entries).to_bytes() != info.state_hash:
        raise SnapshotError(f"chunk {index}: its entries do not hash to its share")
    return entries
