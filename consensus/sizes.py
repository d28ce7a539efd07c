"""Worst-case encoded sizes of the consensus messages that grow with n.

A peer frame has a size limit; a replica must never produce a message above
it, or the message is dropped and the protocol stalls. PRE-PREPAREs are
bounded by the batch limits. VIEW-CHANGE and NEW-VIEW carry certificates, not
payloads, and the replica refuses certificates that are larger than an honest
replica makes them (exactly quorum checkpoints in a proof, exactly quorum-1
prepares in a prepared certificate, at most one certificate per height of the
watermark window), so their size depends only on n, the window and the chain
id. These functions encode a synthetic message of that worst shape, with
every integer at its widest msgpack encoding, and measure it.
"""

from __future__ import annotations

from functools import lru_cache

from consensus.messages import (
    Checkpoint,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    ViewChange,
    canonical,
)

_BIG = (1 << 63) - 1  # widest msgpack integer an honest message could carry
_SIG = bytes(64)
_DIGEST = bytes(32)


def _quorum(n: int) -> int:
    f = (n - 1) // 3
    return (n + f + 2) // 2


def _pre_prepare(chain_id: str, payload: tuple[bytes, ...] = ()) -> PrePrepare:
    proposal = Proposal(chain_id, _BIG, _BIG, _BIG, _DIGEST)
    return PrePrepare(_BIG, proposal, payload, _BIG, _SIG)


@lru_cache(maxsize=64)
def _view_change(chain_id: str, n: int, window: int) -> ViewChange:
    q = _quorum(n)
    proof = tuple(Checkpoint(_BIG, _DIGEST, _BIG, _SIG) for _ in range(q))
    prepares = tuple(Prepare(_BIG, _BIG, _DIGEST, _BIG, _SIG) for _ in range(q - 1))
    cert = PreparedCert(_pre_prepare(chain_id), prepares)
    return ViewChange(_BIG, _BIG, _DIGEST, proof, (cert,) * window, _BIG, _SIG)


@lru_cache(maxsize=64)
def view_change_bytes(chain_id: str, n: int, window: int) -> int:
    return len(canonical(_view_change(chain_id, n, window)))


@lru_cache(maxsize=64)
def new_view_bytes(chain_id: str, n: int, window: int) -> int:
    vc = _view_change(chain_id, n, window)
    pps = (_pre_prepare(chain_id),) * window
    return len(canonical(NewView(_BIG, (vc,) * _quorum(n), pps, _BIG, _SIG)))


def pre_prepare_bytes(chain_id: str, batch_max_count: int, batch_max_bytes: int) -> int:
    """A full batch: ``batch_max_bytes`` of payload in ``batch_max_count`` requests
    (msgpack adds at most 5 bytes of length per request)."""
    return len(canonical(_pre_prepare(chain_id))) + batch_max_bytes + 5 * batch_max_count + 5
