"""Consensus messages, their canonical signing bytes and their wire union.

Every message a replica signs is a frozen msgspec ``Struct`` encoded as a
msgpack array (``array_like``) with a type tag in front. msgpack encoding of
integers, byte strings, strings and arrays is deterministic, so the signing
bytes of a message are the same on every machine and in every process:
``encode([DOMAIN, chain_id, tag, field, field, ...])`` without the signature.
The chain id is part of the signing bytes but not of the message, so a vote
can never be replayed on another chain.

Validators are named by their index in the genesis validator list.

A *proposal* is what consensus agrees on at one height: chain id, height,
timestamp (milliseconds of the proposer's clock), proposer and the Merkle root
of the payload. Its digest names it in votes. The view is *not* part of the
proposal, so a proposal re-proposed after a view change keeps its digest.
The parent hash and the app-state root of the block header are derived after
commit (see ``replica.py``, docs/blocks.md, "pipelining vs. parent hashes").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

DOMAIN = "hygeia/consensus/v1"

_encoder = msgspec.msgpack.Encoder()


def canonical(value: Any) -> bytes:
    """Deterministic msgpack bytes of ints, bytes, str, lists and structs."""
    return _encoder.encode(value)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Proposal(msgspec.Struct, frozen=True, array_like=True):
    """The block header fields consensus certifies at one height."""

    chain_id: str
    height: int
    timestamp: int
    proposer: int
    payload_root: bytes

    def digest(self) -> bytes:
        return sha256(canonical((DOMAIN, "proposal", self)))


class PrePrepare(msgspec.Struct, frozen=True, array_like=True, tag="pp"):
    view: int
    proposal: Proposal
    payload: tuple[bytes, ...]
    sender: int
    sig: bytes = b""

    @property
    def height(self) -> int:
        return self.proposal.height

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical((DOMAIN, chain_id, "pp", self.view, self.proposal.digest(), self.sender))

    def stripped(self) -> PrePrepare:
        """The same signed pre-prepare without its payload (the signature does not
        cover the payload; anyone re-attaches one that matches the payload root)."""
        return msgspec.structs.replace(self, payload=())

    def with_payload(self, payload: tuple[bytes, ...]) -> PrePrepare:
        return msgspec.structs.replace(self, payload=payload)


class Prepare(msgspec.Struct, frozen=True, array_like=True, tag="prepare"):
    view: int
    height: int
    digest: bytes
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical(
            (DOMAIN, chain_id, "prepare", self.view, self.height, self.digest, self.sender)
        )


class Commit(msgspec.Struct, frozen=True, array_like=True, tag="commit"):
    view: int
    height: int
    digest: bytes
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical(
            (DOMAIN, chain_id, "commit", self.view, self.height, self.digest, self.sender)
        )


class Checkpoint(msgspec.Struct, frozen=True, array_like=True, tag="checkpoint"):
    """A replica's app-state root after executing every block up to ``height``."""

    height: int
    state_root: bytes
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical(
            (DOMAIN, chain_id, "checkpoint", self.height, self.state_root, self.sender)
        )


class PreparedCert(msgspec.Struct, frozen=True, array_like=True):
    """A pre-prepare and 2f matching prepares from distinct other replicas.

    Inside a VIEW-CHANGE the pre-prepare is *stripped* (``payload == ()``): its
    signature covers the proposal digest, not the payload, so the certificate
    still proves what prepared while the message stays small.
    """

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]

    def stripped(self) -> PreparedCert:
        if not self.pre_prepare.payload:
            return self
        return PreparedCert(self.pre_prepare.stripped(), self.prepares)


class ViewChange(msgspec.Struct, frozen=True, array_like=True, tag="view_change"):
    """A replica's vote to move to ``new_view``: its stable checkpoint with the
    quorum proof, and its prepared certificates above it (pre-prepares stripped
    of their payloads, exactly quorum-1 prepares each), so its size is bounded
    by n and the watermark window whatever the transactions weigh."""

    new_view: int
    stable_height: int
    stable_root: bytes
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        body = (
            self.new_view,
            self.stable_height,
            self.stable_root,
            self.checkpoint_proof,
            self.prepared,
            self.sender,
        )
        return canonical((DOMAIN, chain_id, "view_change", body))


class NewView(msgspec.Struct, frozen=True, array_like=True, tag="new_view"):
    """The new primary's proof of the view change (a quorum of VIEW-CHANGEs) and
    its re-proposals, stripped of payloads (replicas fetch a missing payload
    with ``PayloadRequest``)."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        body = (self.view, self.view_changes, self.pre_prepares, self.sender)
        return canonical((DOMAIN, chain_id, "new_view", body))


class NewViewRequest(msgspec.Struct, frozen=True, array_like=True, tag="nv_request"):
    """A replica that sees traffic of a higher view asks for its NEW-VIEW."""

    view: int
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical((DOMAIN, chain_id, "nv_request", self.view, self.sender))


class Status(msgspec.Struct, frozen=True, array_like=True, tag="status"):
    """A replica's heartbeat: its view and the last height it delivered.

    Sent every ``status_interval_ms`` and in answer to a peer that is behind,
    so a replica that missed the last commits of a quiet network learns that
    f+1 others are ahead and fetches the blocks (one of them is honest).
    """

    view: int
    height: int
    low: int
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical(
            (DOMAIN, chain_id, "status", self.view, self.height, self.low, self.sender)
        )


class PayloadRequest(msgspec.Struct, frozen=True, array_like=True, tag="payload_req"):
    """Ask a peer for the payload of the proposal with ``digest`` at ``height``
    (NEW-VIEW re-proposals travel without their payloads)."""

    height: int
    digest: bytes
    sender: int
    sig: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical((DOMAIN, chain_id, "payload_req", self.height, self.digest, self.sender))


class PayloadReply(msgspec.Struct, frozen=True, array_like=True, tag="payload"):
    """A proposal and its payload. Self-certifying: the receiver checks the
    proposal's digest against the one it asked for and the payload against
    the proposal's payload root, so the signature only names the sender."""

    proposal: Proposal
    payload: tuple[bytes, ...]
    sender: int
    sig: bytes = b""

    @property
    def height(self) -> int:
        return self.proposal.height

    def signing_bytes(self, chain_id: str) -> bytes:
        return canonical((DOMAIN, chain_id, "payload", self.proposal.digest(), self.sender))


Message = (
    PrePrepare
    | Prepare
    | Commit
    | Checkpoint
    | ViewChange
    | NewView
    | NewViewRequest
    | Status
    | PayloadRequest
    | PayloadReply
)

SIGNED_TYPES: tuple[type, ...] = (
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
    NewViewRequest,
    Status,
    PayloadRequest,
    PayloadReply,
)


class CommittedBlock(msgspec.Struct, frozen=True, array_like=True):
    """A proposal, its payload and the commit certificate (2f+1 matching commits)."""

    proposal: Proposal
    payload: tuple[bytes, ...]
    certificate: tuple[Commit, ...]

    @property
    def height(self) -> int:
        return self.proposal.height


_message_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_block_decoder = msgspec.msgpack.Decoder(CommittedBlock)


def encode_message(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode_message(data: bytes) -> Message:
    """Decode a wire message; raises ``msgspec.DecodeError`` / ``ValidationError``."""
    return _message_decoder.decode(data)


def encode_block(block: CommittedBlock) -> bytes:
    return _encoder.encode(block)


def decode_block(data: bytes) -> CommittedBlock:
    return _block_decoder.decode(data)


# the message types that carry a signature
Signed = TypeVar(
    "Signed",
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
    NewViewRequest,
    Status,
    PayloadRequest,
    PayloadReply,
)


def sign_message(msg: Signed, sign: Callable[[bytes], bytes], chain_id: str) -> Signed:
    """``msg`` with ``sig`` set to ``sign`` over its signing bytes on ``chain_id``."""
    return msgspec.structs.replace(msg, sig=sign(msg.signing_bytes(chain_id)))
