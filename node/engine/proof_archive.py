"""What a node keeps, beyond the chain, so it can prove a transaction's outcome.

Two kinds of record in the storage namespace ``proof/`` (``storage/layout.py``),
read one at a time by ``node.api.views.proof_json``:

- ``block/<height u64>``: the block's ``BlockDigests`` (96 bytes: writes digest,
  content digest, results root), written with the block (``BlockApplier``);
- ``stable/<height u64>``: every stable checkpoint's record with its quorum of
  signatures (``consensus.records.StableRecord``), copied when the replica
  persists it (the replica keeps only the latest one, per epoch).

A proof of outcome (``node/core/outcome_proof.py``) chains the digests of the
result's block up to the first archived stable checkpoint at or above it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from consensus.records import KEY_STABLE, decode_stable

__all__ = ["digests_key", "stable_archive", "stable_key"]

Write = tuple[bytes, bytes | None]


def digests_key(height: int) -> bytes:
    return b"block/" + height.to_bytes(8, "big")


def stable_key(height: int) -> bytes:
    return b"stable/" + height.to_bytes(8, "big")


def stable_archive(records: Iterable[Write]) -> list[tuple[bytes, bytes]]:
    """The archive copies of the stable checkpoint records among a replica's
    persisted ``records`` (keys ``stable``, or scoped by epoch ``e/<n>/stable``)."""
    out: list[tuple[bytes, bytes]] = []
    for key, value in records:
        if value is None or not key.endswith(KEY_STABLE):
            continue
        try:
            height = decode_stable(value).height
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # not ours to judge: the replica wrote it
        out.append((stable_key(height), value))
    return out
