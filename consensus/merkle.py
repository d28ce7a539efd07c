"""Merkle tree of a block's transactions, RFC 6962 style.

Leaves and inner nodes are hashed with different one-byte prefixes so that a
leaf can never be passed off as an inner node (second-preimage safety):

    leaf(x)     = SHA-256(0x00 || x)
    node(l, r)  = SHA-256(0x01 || l || r)
    root([])    = SHA-256("")
    root([x])   = leaf(x)
    root(xs)    = node(root(xs[:k]), root(xs[k:]))  k = largest power of 2 < len(xs)

An audit path lists the sibling hashes from the leaf up to the root; with the
leaf index and the tree size it recomputes the root (RFC 6962 section 2.1.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(item: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + item).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    # bottom-up pairing gives the RFC 6962 shape: an odd last node is promoted
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(items: Sequence[bytes]) -> bytes:
    return _root_of_leaf_hashes([leaf_hash(x) for x in items])


def audit_path(items: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` up to the root."""
    if not 0 <= index < len(items):
        raise IndexError(f"merkle: leaf index {index} outside tree of {len(items)}")
    hashes = [leaf_hash(x) for x in items]
    return _path(hashes, index)


def _path(hashes: list[bytes], index: int) -> list[bytes]:
    n = len(hashes)
    if n <= 1:
        return []
    k = _split(n)
    if index < k:
        return [*_path(hashes[:k], index), _root_of_leaf_hashes(hashes[k:])]
    return [*_path(hashes[k:], index - k), _root_of_leaf_hashes(hashes[:k])]


def root_from_path(item: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """Recompute the root from one item and its audit path (RFC 6962 / 9162)."""
    if not 0 <= index < size:
        raise ValueError(f"merkle: leaf index {index} outside tree of {size}")
    fn, sn = index, size - 1
    r = leaf_hash(item)
    for p in path:
        if sn == 0:
            raise ValueError("merkle: audit path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("merkle: audit path is too short")
    return r
