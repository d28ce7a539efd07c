"""Epoch links: how a verifier that holds only ``genesis.json`` learns each later
validator set.

Genesis names the validators of epoch 0. Every later epoch (a validator change by
governance, ``node/ledger/validators.py``) is *attested* by the set before it:
each validator of epoch e-1 signs, with its node key, the statement

    canonical JSON of {"tag": "hygeia-epoch-attestation/1", "chain_id": C,
                       "epoch": e, "first_height": H, "validators": [<64 hex>, ...]}

(``attestation_bytes``: the node keys of epoch e in index order, H the first
height e certifies) and commits the signature on chain in an ``epoch.attest``
transaction (``node/ledger/domains/epoch_attest.py``; the node does it by itself,
``node/engine/epoch_attester.py``). The chain is only the place the signatures
are kept and copied from: what a verifier checks is the signatures.

A *link* is one epoch and a quorum of its predecessor's attestations::

    {"epoch": e, "first_height": H, "validators": [<64 hex>, ...],
     "attestations": [{"validator": <index in epoch e-1>, "signature": <128 hex>}, ...]}

``verify_links`` walks a list of links from genesis: epoch numbers 1, 2, ... in
order, first heights strictly increasing, each link signed by at least a quorum
(``ConsensusConfig.quorum`` of the previous set's size) of distinct validators of
the previous epoch. It returns every epoch, genesis's first, so that a commit
certificate at any height is checked against the set of that height's epoch
(``node/core/proof.py``).

Why this is enough: a quorum of epoch e-1 holds at least one honest validator
that signs only the epoch its own execution of the chain wrote, and every honest
node executes the same chain; so, with at most f faulty validators in every
epoch, a chain of links from genesis names the sets the chain itself installed.
The limit is the usual one of light clients: keys of a *retired* set that leak
later could attest a fork of history; a verifier should prefer the newest
proofs it can get and a consortium should destroy retired node keys.

The tag and the JSON shape keep an attestation apart from every other signed
thing: consensus messages are signed as msgspec tuples, transactions as objects
without a ``tag`` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from consensus.config import ConsensusConfig
from consensus.epochs import Epoch, EpochError
from node.core.codec import INT64_MAX, canonical_json
from node.core.hexstr import HEX64, HEX128
from node.core.keys import verify

__all__ = [
    "ATTESTATION_TAG",
    "LINK_FIELDS",
    "MAX_EPOCH_VALIDATORS",
    "MAX_LINKS",
    "EpochLinkError",
    "attestation_bytes",
    "link_json",
    "quorum_of",
    "verify_links",
]

ATTESTATION_TAG: Final = "hygeia-epoch-attestation/1"
LINK_FIELDS: Final = ("attestations", "epoch", "first_height", "validators")
ATTESTATION_FIELDS: Final = ("signature", "validator")
MAX_EPOCH_VALIDATORS: Final = 1024  # a bound on hostile input: testnets go to 1,000
MAX_LINKS: Final = 100_000  # a bound on hostile input, far above any real history


class EpochLinkError(ValueError):
    """A link that does not prove the epoch it names; the message says why."""


def attestation_bytes(
    chain_id: str, epoch: int, first_height: int, validators: Sequence[str]
) -> bytes:
    """What the validators of epoch ``epoch - 1`` sign for epoch ``epoch``: its number,
    first height and node keys (64 lower-case hex each, in index order)."""
    return canonical_json(
        {
            "tag": ATTESTATION_TAG,
            "chain_id": chain_id,
            "epoch": epoch,
            "first_height": first_height,
            "validators": list(validators),
        }
    )


def quorum_of(n: int) -> int:
    """The quorum of a set of ``n`` validators (the replica's, ``ConsensusConfig``)."""
    return ConsensusConfig(chain_id="-", n=n).quorum


def link_json(
    epoch: int,
    first_height: int,
    validators: Sequence[str],
    attestations: Sequence[tuple[int, str]],
) -> dict[str, Any]:
    """One link as proofs carry it; ``attestations`` are (index in the previous epoch,
    signature hex), listed in index order."""
    return {
        "epoch": epoch,
        "first_height": first_height,
        "validators": list(validators),
        "attestations": [{"validator": i, "signature": sig} for i, sig in sorted(attestations)],
    }


def _int(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise EpochLinkError(f"{what} must be an integer >= {low}, got {value!r}")
    if value > INT64_MAX:
        raise EpochLinkError(f"{what} must be below 2^63, got {value}")
    return value


def _keys(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EPOCH_VALIDATORS:
        raise EpochLinkError(f"{what} must list 1..{MAX_EPOCH_VALIDATORS} node keys")
    for i, k in enumerate(value):
        if not isinstance(k, str) or not HEX64.fullmatch(k):
            raise EpochLinkError(f"{what}[{i}] must be 64 lower-case hex digits")
    if len(set(value)) != len(value):
        raise EpochLinkError(f"{what} names a node key twice")
    return tuple(bytes.fromhex(k) for k in value)


def _check_link(chain_id: str, previous: Epoch, link: Any, where: str) -> Epoch:
    if not isinstance(link, dict) or sorted(link) != list(LINK_FIELDS):
        raise EpochLinkError(f"{where} must have exactly {', '.join(LINK_FIELDS)}")
    number = _int(link["epoch"], f"{where}.epoch", 1)
    if number != previous.number + 1:
        raise EpochLinkError(
            f"{where} is epoch {number}: links go 1, 2, ... from genesis, "
            f"epoch {previous.number + 1} expected"
        )
    first = _int(link["first_height"], f"{where}.first_height", 1)
    if first <= previous.first_height:
        raise EpochLinkError(
            f"{where}: epoch {number} starts at height {first}, not after epoch "
            f"{previous.number}'s first height {previous.first_height}"
        )
    keys = _keys(link["validators"], f"{where}.validators")
    attestations = link["attestations"]
    if not isinstance(attestations, list) or len(attestations) > previous.n:
        raise EpochLinkError(f"{where}.attestations must be a list of at most {previous.n}")
    message = attestation_bytes(chain_id, number, first, link["validators"])
    seen: set[int] = set()
    for i, att in enumerate(attestations):
        what = f"{where}.attestations[{i}]"
        if not isinstance(att, dict) or sorted(att) != list(ATTESTATION_FIELDS):
            raise EpochLinkError(f"{what} must have exactly validator, signature")
        index = _int(att["validator"], f"{what}.validator", 0)
        if index >= previous.n:
            raise EpochLinkError(
                f"{what}: epoch {previous.number} has no validator {index} (it has {previous.n})"
            )
        if index in seen:
            raise EpochLinkError(f"{what}: validator {index} attests twice")
        seen.add(index)
        sig = att["signature"]
        if not isinstance(sig, str) or not HEX128.fullmatch(sig):
            raise EpochLinkError(f"{what}.signature must be 128 lower-case hex digits")
        if not verify(previous.validators[index], message, bytes.fromhex(sig)):
            raise EpochLinkError(
                f"{what}: validator {index} of epoch {previous.number} did not sign "
                f"epoch {number} as given (forged, or another set or first height)"
            )
    need = quorum_of(previous.n)
    if len(seen) < need:
        raise EpochLinkError(
            f"{where}: epoch {number} is attested by {len(seen)} validators of epoch "
            f"{previous.number}, a quorum is {need}"
        )
    try:
        return Epoch(number, first, keys)
    except EpochError as e:
        raise EpochLinkError(f"{where}: {e}") from None


def verify_links(chain_id: str, genesis_keys: Sequence[bytes], links: Any) -> list[Epoch]:
    """Every epoch from genesis (epoch 0: ``genesis_keys`` from height 1) through the
    last link, each checked against the one before; ``EpochLinkError`` at the first
    link that does not hold."""
    if not isinstance(links, list) or len(links) > MAX_LINKS:
        raise EpochLinkError(f"epochs must be a list of at most {MAX_LINKS} links")
    epochs = [Epoch(0, 1, tuple(genesis_keys))]
    for i, link in enumerate(links):
        epochs.append(_check_link(chain_id, epochs[-1], link, f"epochs[{i}]"))
    return epochs
