"""The on-disk layout: namespaces, key and value encodings, schema version.

Every key lives under one namespace prefix (plyvel ``prefixed_db``); no prefix
is a prefix of another, so namespaces never overlap. Integers are fixed-width
big-endian, so LevelDB's byte order is numeric order (blocks iterate by height).

    block/<height u64>        -> block bytes (opaque to storage)
    blockhash/<block hash>    -> height u64
    tx/<tx hash>              -> height u64 || index u32
    state/<key>               -> value (app state, opaque)
    consensus/<key>           -> value (the replica's Persist records, opaque)
    proof/<key>               -> value (what proofs of outcome need beyond the
                                 chain, opaque: per-block state-root digests,
                                 archived checkpoint certificates); never read
                                 back in bulk, so it may grow with the chain
    meta/schema               -> schema version u64
    meta/genesis              -> the genesis hash (32 bytes) the database belongs to
    meta/height               -> tip height u64 (absent: no block yet, tip 0)
    meta/base                 -> the height a state-synced database starts at (its
                                 first stored block; absent: 0, every block is here)
    meta/restoring            -> the snapshot height a state sync is writing (absent:
                                 none); its state is unverified until the tip is set

Heights start at 1; tip 0 means "genesis state, no committed block".
Bump ``SCHEMA_VERSION`` whenever this layout changes incompatibly.
"""

from __future__ import annotations

import enum
import struct

from storage.errors import StorageError

SCHEMA_VERSION = 1

META_SCHEMA = b"schema"
META_HEIGHT = b"height"
META_GENESIS = b"genesis"
META_BASE = b"base"
META_RESTORING = b"restoring"

MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1

_U64 = struct.Struct(">Q")
_LOCATION = struct.Struct(">QI")


class Namespace(enum.Enum):
    """A key namespace; the value is its on-disk prefix."""

    BLOCKS = b"block/"
    BLOCK_HASHES = b"blockhash/"
    TXS = b"tx/"
    STATE = b"state/"
    CONSENSUS = b"consensus/"
    PROOFS = b"proof/"
    META = b"meta/"


def encode_u64(value: int) -> bytes:
    if not 0 <= value <= MAX_U64:
        raise ValueError(f"{value} does not fit in an unsigned 64-bit integer")
    return _U64.pack(value)


def decode_u64(raw: bytes, what: str) -> int:
    if len(raw) != _U64.size:
        raise StorageError(f"corrupted {what}: expected 8 bytes, found {len(raw)}")
    value: int = _U64.unpack(raw)[0]
    return value


def encode_location(height: int, index: int) -> bytes:
    if not 0 <= index <= MAX_U32:
        raise ValueError(f"transaction index {index} does not fit in 32 bits")
    return _LOCATION.pack(height, index)


def decode_location(raw: bytes) -> tuple[int, int]:
    if len(raw) != _LOCATION.size:
        raise StorageError(
            f"corrupted transaction index entry: expected {_LOCATION.size} bytes, found {len(raw)}"
        )
    height, index = _LOCATION.unpack(raw)
    return int(height), int(index)
