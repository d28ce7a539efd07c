"""Consensus signatures checked in the verify pool, before the replica sees them.

The replica checks every signature of a message (the message's own and those
of the certificates a VIEW-CHANGE or NEW-VIEW carries) through the verifier it
was given, synchronously, inside the consensus driver's task on the event
loop. The daemon checks them first in its verify pool (``preverify``, run in
a worker thread: Ed25519 releases the GIL) and remembers the triples that
checked out in a ``PreverifiedSignatures``, which it gives the replica as its
verifier: the replica's own check of those triples is then a SHA-256 and a
dict lookup on the event loop, and only what was not pre-checked (or was
forgotten) is verified there. The replica wraps whatever verifier it gets in
its own bounded cache of successes (``consensus.crypto.CachingVerifier``); this
one is the daemon's side of the same idea, filled from the pool.

Each distinct (validator, signed bytes, signature) of a message is checked
once: a message may repeat one (a Byzantine validator pads a VIEW-CHANGE or
NEW-VIEW to the frame limit with tens of thousands of copies of one
certificate), and checking every copy would cost seconds of the pool's time per
such message, delaying every honest message behind it.

A message whose own signature fails in the pool never reaches the replica: the
daemon drops it and penalises its sender (``bad-signature``). A failing nested
signature is not remembered; the replica finds it and refuses the message
with its reason code, which the daemon scores too.

The commit certificates of blocks received by block sync go through the pool
the same way (``check``): block sync and then the replica check them against
this verifier too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from consensus.crypto import Verifier
from consensus.messages import SIGNED_TYPES, Message
from node.core.keys import verify_batch

Triple = tuple[int, bytes, bytes]  # (validator, SHA-256 of the signed bytes, signature)

DEFAULT_SIZE = 16_384


def signed_parts(msg: Any) -> Iterator[Any]:
    """``msg`` and every signed message inside it (certificates, view changes),
    depth first; payloads (tuples of bytes) are skipped."""
    if isinstance(msg, SIGNED_TYPES):
        yield msg
    for name in msg.__struct_fields__:
        value = getattr(msg, name)
        if isinstance(value, msgspec.Struct):
            yield from signed_parts(value)
        elif isinstance(value, (tuple, list)) and value and isinstance(value[0], msgspec.Struct):
            for item in value:
                yield from signed_parts(item)


def _key(validator: int, data: bytes, sig: bytes) -> Triple:
    return (validator, hashlib.sha256(data).digest(), sig)


class PreverifiedSignatures:
    """A ``consensus.crypto.Verifier`` that trusts the triples checked in the pool.

    At most ``size`` triples are kept, the oldest forgotten first; a triple
    not kept is checked by ``inner`` (on the caller's thread).
    """

    def __init__(self, inner: Verifier, keys: Sequence[bytes], size: int = DEFAULT_SIZE) -> None:
        self._inner = inner
        self._keys = list(keys)
        self._size = size
        self._ok: dict[Triple, None] = {}
        self.hits = 0
        self.misses = 0

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        if _key(validator, data, sig) in self._ok:
            self.hits += 1
            return True
        self.misses += 1
        return self._inner.verify(validator, data, sig)

    def preverify(self, msg: Message, chain_id: str) -> tuple[bool, list[Triple]]:
        """Check every signature of ``msg``: whether its own one is good, and the
        good triples. Blocking: run it in a worker thread, then ``remember`` them.
        Triples remembered already are not checked again."""
        good, top = self._check(signed_parts(msg), chain_id)
        return top is not None and top in good, good

    def check(self, obj: Any, chain_id: str) -> list[Triple]:
        """The good triples of every signed message inside ``obj`` (a struct, such
        as a ``CommittedBlock`` and its commit certificate); blocking, like
        ``preverify``."""
        return self._check(signed_parts(obj), chain_id)[0]

    def _check(self, parts: Iterator[Any], chain_id: str) -> tuple[list[Triple], Triple | None]:
        keys = self._keys
        good: list[Triple] = []
        todo: list[Triple] = []
        items: list[tuple[bytes, bytes, bytes]] = []
        top: Triple | None = None
        seen: set[Triple] = set()
        for part in parts:
            sender = part.sender
            data = part.signing_bytes(chain_id)
            triple = _key(sender, data, part.sig)
            if top is None:
                top = triple
            if triple in seen:  # a copy within this message: checked once
                continue
            seen.add(triple)
            if triple in self._ok:  # a read from another thread: atomic under the GIL
                good.append(triple)
            elif 0 <= sender < len(keys):
                todo.append(triple)
                items.append((keys[sender], data, part.sig))
        for triple, ok in zip(todo, verify_batch(items, workers=1), strict=True):
            if ok:
                good.append(triple)
        return good, top

    def remember(self, triples: list[Triple]) -> None:
        """Keep ``triples`` (checked by ``preverify``); on the event loop only."""
        ok = self._ok
        for triple in triples:
            ok.pop(triple, None)
            ok[triple] = None
        while len(ok) > self._size:
            del ok[next(iter(ok))]
