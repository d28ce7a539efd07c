"""Block-scoped view of the app state: reads fall through to the stored state,
writes collect in an overlay, and each transaction can be rolled back alone.

Keys are bytes under per-domain prefixes (``member/``, ``anchor/`` ...), values
are canonical JSON. ``writes()`` returns the overlay sorted by key, so the
same block yields the same write set, and so the same state root, on every
node whatever order the apply functions touched keys in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

from node.core.codec import canonical_json, parse_json

_DELETED = None

TIME_KEY = b"meta/time"  # the latest block time (ms), written by the executor


class StateReader(Protocol):
    def state_get(self, key: bytes) -> bytes | None: ...

    def state_iter(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class BlockState:
    """One block's (or one query's) view of ``base``, which must not change while
    the view lives: each stored value is read from ``base`` once and remembered
    (a block's transactions read their signers' member records over and over, and
    the state hash needs every written key's value before the block)."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._overlay: dict[bytes, bytes | None] = {}
        self._tx_undo: dict[bytes, bytes | object | None] = {}
        self._stored: dict[bytes, bytes | None] = {}
        self._scalars: dict[bytes, Any] = {}

    _ABSENT = object()

    # raw bytes
    def get_raw(self, key: bytes) -> bytes | None:
        if key in self._overlay:
            return self._overlay[key]
        return self.stored(key)

    def stored(self, key: bytes) -> bytes | None:
        """The value of ``key`` in ``base``, before any write of this view."""
        try:
            return self._stored[key]
        except KeyError:
            value = self._stored[key] = self._base.state_get(key)
            return value

    def put_raw(self, key: bytes, value: bytes | None) -> None:
        if key not in self._tx_undo:
            self._tx_undo[key] = self._overlay.get(key, self._ABSENT)
        self._overlay[key] = value

    # JSON values
    def get(self, key: bytes) -> Any:
        raw = self.get_raw(key)
        if raw is None:
            return None
        if raw[:1] in b"{[":  # a fresh object each time: callers may change it
            return parse_json(raw)
        try:  # a string or number: immutable, parsed once per view
            return self._scalars[raw]
        except KeyError:
            value = self._scalars[raw] = parse_json(raw)
            return value

    def put(self, key: bytes, value: Any) -> None:
        self.put_raw(key, canonical_json(value))

    def delete(self, key: bytes) -> None:
        self.put_raw(key, _DELETED)

    def exists(self, key: bytes) -> bool:
        return self.get_raw(key) is not None

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        """Sorted by key, overlay merged over the stored state."""
        merged: dict[bytes, bytes | None] = dict(self._base.state_iter(prefix))
        for k, v in self._overlay.items():
            if k.startswith(prefix):
                merged[k] = v
        for k in sorted(merged):
            v = merged[k]
            if v is not None:
                yield k, parse_json(v)

    # transactions
    def begin_tx(self) -> None:
        self._tx_undo = {}

    def rollback_tx(self) -> None:
        for key, old in self._tx_undo.items():
            if old is self._ABSENT:
                del self._overlay[key]
            else:
                self._overlay[key] = old  # type: ignore[assignment]
        self._tx_undo = {}

    def writes(self) -> list[tuple[bytes, bytes | None]]:
        return [(k, self._overlay[k]) for k in sorted(self._overlay)]


def block_time(state: BlockState) -> int:
    """The latest block time in ms (0 before the first block): what queries call now."""
    t: int = state.get(TIME_KEY) or 0
    return t


def writes_digest(writes: list[tuple[bytes, bytes | None]]) -> bytes:
    """SHA-256 of a block's sorted write set: in key order, len-prefixed key and value
    (4 bytes big-endian each; a deletion has length 0xFFFFFFFF and no value)."""
    h = hashlib.sha256()
    for key, value in writes:
        h.update(len(key).to_bytes(4, "big"))
        h.update(key)
        if value is None:
            h.update(b"\xff\xff\xff\xff")
        else:
            h.update(len(value).to_bytes(4, "big"))
            h.update(value)
    return h.digest()
