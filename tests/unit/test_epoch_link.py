"""Epoch links (node/core/epoch_link.py): a chain of links from genesis verifies and
names each epoch's set and first height; every link that does not prove its epoch
(out of order, not after the previous epoch, short of a quorum of the previous set,
a validator counted twice or out of range, a signature by an outsider or over
another statement, a malformed shape) fails with ``EpochLinkError`` naming why."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from consensus.epochs import Epoch
from node.core.codec import canonical_json
from node.core.epoch_link import (
    ATTESTATION_TAG,
    MAX_EPOCH_VALIDATORS,
    MAX_LINKS,
    EpochLinkError,
    attestation_bytes,
    link_json,
    quorum_of,
    verify_links,
)
from node.core.keys import SigningKey, key_from_seed, sign

CHAIN = "hygeia-test"


def keys(label: str, n: int) -> list[SigningKey]:
    return [key_from_seed(hashlib.sha256(f"{label}-{i}".encode()).digest()) for i in range(n)]


def hexes(ks: Sequence[SigningKey]) -> list[str]:
    return [bytes(k.verify_key).hex() for k in ks]


def raw(ks: Sequence[SigningKey]) -> tuple[bytes, ...]:
    return tuple(bytes(k.verify_key) for k in ks)


GENESIS = keys("genesis", 4)
EPOCH1 = keys("epoch-1", 5)
EPOCH2 = keys("epoch-2", 7)
OUTSIDER = key_from_seed(b"\x66" * 32)


def attest(
    signers: Sequence[SigningKey],
    indices: Sequence[int],
    epoch: int,
    first_height: int,
    validators: Sequence[str],
    chain: str = CHAIN,
) -> list[tuple[int, str]]:
    """(index, signature hex) of ``signers[i]`` for each i, over the given statement."""
    message = attestation_bytes(chain, epoch, first_height, validators)
    return [(i, sign(signers[i], message).hex()) for i in indices]


def link(
    epoch: int,
    first_height: int,
    new: Sequence[SigningKey],
    previous: Sequence[SigningKey],
    indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A correct link: ``new`` attested by ``indices`` of ``previous`` (default: a quorum)."""
    if indices is None:
        indices = range(quorum_of(len(previous)))
    validators = hexes(new)
    return link_json(
        epoch, first_height, validators, attest(previous, indices, epoch, first_height, validators)
    )


def chain3() -> list[dict[str, Any]]:
    """Epoch 1 (5 validators) from height 5, epoch 2 (7 validators) from height 105."""
    return [link(1, 5, EPOCH1, GENESIS), link(2, 105, EPOCH2, EPOCH1)]


def check(links: Any, match: str) -> None:
    with pytest.raises(EpochLinkError, match=match):
        verify_links(CHAIN, raw(GENESIS), links)


# ------------------------------------------------------------------ good chains
def test_quorum_of() -> None:
    assert [quorum_of(n) for n in (1, 4, 5, 7)] == [1, 3, 4, 5]


def test_no_links_is_genesis_alone() -> None:
    epochs = verify_links(CHAIN, raw(GENESIS), [])
    assert epochs == [Epoch(0, 1, raw(GENESIS))]
    assert epochs[0].n == 4


def test_chain_of_links_names_every_epoch() -> None:
    epochs = verify_links(CHAIN, raw(GENESIS), chain3())
    assert [(e.number, e.first_height, e.n) for e in epochs] == [(0, 1, 4), (1, 5, 5), (2, 105, 7)]
    assert [e.validators for e in epochs] == [raw(GENESIS), raw(EPOCH1), raw(EPOCH2)]
    assert all(isinstance(e, Epoch) for e in epochs)


def test_three_links_and_every_attestation() -> None:
    epoch3 = keys("epoch-3", 4)
    links = [
        link(1, 2, EPOCH1, GENESIS, range(4)),  # all four, more than a quorum
        link(2, 3, EPOCH2, EPOCH1, (4, 1, 3, 0)),  # a quorum of 5, not the first four
        link(3, 1000, epoch3, EPOCH2, (6, 5, 4, 3, 2)),  # a quorum of 7
    ]
    epochs = verify_links(CHAIN, raw(GENESIS), links)
    assert [(e.number, e.first_height, e.n) for e in epochs] == [
        (0, 1, 4),
        (1, 2, 5),
        (2, 3, 7),
        (3, 1000, 4),
    ]
    assert epochs[3].validators == raw(epoch3)


def test_link_json_lists_attestations_in_index_order() -> None:
    j = link_json(1, 5, hexes(EPOCH1), [(2, "cc" * 64), (0, "aa" * 64), (1, "bb" * 64)])
    assert sorted(j) == ["attestations", "epoch", "first_height", "validators"]
    assert [a["validator"] for a in j["attestations"]] == [0, 1, 2]
    assert j["attestations"][0] == {"validator": 0, "signature": "aa" * 64}


def test_genesis_keys_as_list_or_tuple() -> None:
    assert verify_links(CHAIN, list(raw(GENESIS)), chain3()) == verify_links(
        CHAIN, raw(GENESIS), chain3()
    )


# ------------------------------------------------------------------ attestation bytes
def test_attestation_bytes() -> None:
    v = hexes(EPOCH1)
    b = attestation_bytes(CHAIN, 1, 5, v)
    assert ATTESTATION_TAG.encode() in b
    assert CHAIN.encode() in b
    assert b == canonical_json(
        {
            "tag": ATTESTATION_TAG,
            "chain_id": CHAIN,
            "epoch": 1,
            "first_height": 5,
            "validators": v,
        }
    )
    assert b == attestation_bytes(CHAIN, 1, 5, tuple(v))  # any sequence
    others = {
        attestation_bytes("other-chain", 1, 5, v),
        attestation_bytes(CHAIN, 2, 5, v),
        attestation_bytes(CHAIN, 1, 6, v),
        attestation_bytes(CHAIN, 1, 5, v[:4]),
        attestation_bytes(CHAIN, 1, 5, [v[1], v[0], *v[2:]]),
    }
    assert len(others) == 5 and b not in others


# ------------------------------------------------------------------ order and heights
def test_epoch_skipped() -> None:
    check([link(2, 5, EPOCH1, GENESIS)], r"epochs\[0\] is epoch 2: .* epoch 1 expected")
    check(
        [link(1, 5, EPOCH1, GENESIS), link(3, 105, EPOCH2, EPOCH1)],
        r"epochs\[1\] is epoch 3: .* epoch 2 expected",
    )


def test_epoch_repeated() -> None:
    check(
        [link(1, 5, EPOCH1, GENESIS), link(1, 105, EPOCH2, EPOCH1)],
        r"epochs\[1\] is epoch 1: .* epoch 2 expected",
    )


def test_epoch_zero_is_genesis_not_a_link() -> None:
    check([link(0, 5, EPOCH1, GENESIS)], r"epochs\[0\]\.epoch must be an integer >= 1, got 0")


def test_first_link_at_height_one() -> None:
    check(
        [link(1, 1, EPOCH1, GENESIS)],
        r"epochs\[0\]: epoch 1 starts at height 1, not after epoch 0's first height 1",
    )


@pytest.mark.parametrize("height", [5, 4])
def test_first_height_not_after_the_previous(height: int) -> None:
    check(
        [link(1, 5, EPOCH1, GENESIS), link(2, height, EPOCH2, EPOCH1)],
        rf"epochs\[1\]: epoch 2 starts at height {height}, not after epoch 1's first height 5",
    )


def test_first_height_beyond_int64() -> None:
    check([link_json(1, 2**63, hexes(EPOCH1), [])], r"epochs\[0\]\.first_height")


def test_first_height_zero() -> None:
    check([link(1, 0, EPOCH1, GENESIS)], r"epochs\[0\]\.first_height must be an integer >= 1")


# ------------------------------------------------------------------ quorum
@pytest.mark.parametrize("n", [4, 5, 7])
def test_quorum_of_the_previous_set(n: int) -> None:
    previous = keys(f"prev-{n}", n)
    q = quorum_of(n)
    # epoch 1 is the n-validator set; epoch 2 is attested by it
    first = link(1, 5, previous, GENESIS)
    enough = link(2, 10, EPOCH1, previous, range(n - q, n))
    assert verify_links(CHAIN, raw(GENESIS), [first, enough])[2].validators == raw(EPOCH1)
    short = link(2, 10, EPOCH1, previous, range(q - 1))
    check(
        [first, short],
        rf"epochs\[1\]: epoch 2 is attested by {q - 1} validators of epoch 1, a quorum is {q}",
    )


def test_no_attestations() -> None:
    check(
        [link(1, 5, EPOCH1, GENESIS, [])],
        r"epochs\[0\]: epoch 1 is attested by 0 validators of epoch 0, a quorum is 3",
    )


def test_quorum_is_of_the_previous_set_not_the_new_one() -> None:
    # 3 of genesis's 4 suffice for a 7-validator epoch 1 (whose own quorum would be 5)
    assert verify_links(CHAIN, raw(GENESIS), [link(1, 5, EPOCH2, GENESIS, (0, 1, 2))])[1].n == 7
    # and 3 of a 5-validator epoch do not suffice for a 4-validator epoch 2
    check(
        [link(1, 5, EPOCH1, GENESIS), link(2, 9, GENESIS, EPOCH1, (0, 1, 2))],
        r"attested by 3 validators of epoch 1, a quorum is 4",
    )


def test_same_validator_twice() -> None:
    one = link(1, 5, EPOCH1, GENESIS, (0, 1))
    one["attestations"].append(dict(one["attestations"][0]))
    check([one], r"epochs\[0\]\.attestations\[2\]: validator 0 attests twice")


def test_more_attestations_than_validators() -> None:
    one = link(1, 5, EPOCH1, GENESIS, range(4))
    one["attestations"].append(dict(one["attestations"][0]))
    check([one], r"epochs\[0\]\.attestations must be a list of at most 4")


def test_index_out_of_range() -> None:
    one = link(1, 5, EPOCH1, GENESIS, (0, 1, 2))
    one["attestations"][2]["validator"] = 4
    check([one], r"epochs\[0\]\.attestations\[2\]: epoch 0 has no validator 4 \(it has 4\)")
    # an index valid in the new set (5 validators) is still out of range of the old one
    two = chain3()
    two[1]["attestations"][0]["validator"] = 5
    check(two, r"epochs\[1\]\.attestations\[0\]: epoch 1 has no validator 5 \(it has 5\)")


# ------------------------------------------------------------------ signatures
FORGED = r"did not sign epoch \d+ as given"


def test_signature_by_an_outsider() -> None:
    one = link(1, 5, EPOCH1, GENESIS)
    [(_, sig)] = attest([OUTSIDER], [0], 1, 5, hexes(EPOCH1))
    one["attestations"][1]["signature"] = sig
    check([one], r"epochs\[0\]\.attestations\[1\]: validator 1 of epoch 0 did not sign epoch 1")


def test_signature_by_another_validator_of_the_set() -> None:
    one = link(1, 5, EPOCH1, GENESIS, (0, 1, 2))
    one["attestations"][0]["signature"] = one["attestations"][1]["signature"]
    check([one], r"attestations\[0\]: validator 0 of epoch 0 did not sign epoch 1")


def test_new_set_cannot_attest_itself() -> None:
    validators = hexes(EPOCH1)
    check(
        [link_json(1, 5, validators, attest(EPOCH1, (0, 1, 2), 1, 5, validators))],
        FORGED,
    )


def test_an_older_set_cannot_attest_a_later_epoch() -> None:
    # epoch 2 signed by genesis's validators (indices 0..2 exist in epoch 1 too)
    validators = hexes(EPOCH2)
    stale = link_json(2, 105, validators, attest(GENESIS, range(4), 2, 105, validators))
    check([link(1, 5, EPOCH1, GENESIS), stale], r"epochs\[1\]\.attestations\[0\]: .*" + FORGED)


def _resigned(**change: Any) -> dict[str, Any]:
    """Epoch 1's link whose signatures are over a statement with ``change`` applied."""
    statement: dict[str, Any] = {
        "chain": CHAIN,
        "epoch": 1,
        "first_height": 5,
        "validators": hexes(EPOCH1),
    }
    statement.update(change)
    sigs = attest(
        GENESIS,
        range(3),
        statement["epoch"],
        statement["first_height"],
        statement["validators"],
        statement["chain"],
    )
    return link_json(1, 5, hexes(EPOCH1), sigs)


@pytest.mark.parametrize(
    "change",
    [
        {"chain": "other-chain"},
        {"first_height": 6},
        {"epoch": 2},
        {"validators": hexes(EPOCH1)[:4]},
        {"validators": hexes(EPOCH2)},
        {"validators": list(reversed(hexes(EPOCH1)))},
    ],
    ids=["chain", "first_height", "epoch", "fewer", "other set", "reordered"],
)
def test_signature_over_another_statement(change: dict[str, Any]) -> None:
    assert verify_links(CHAIN, raw(GENESIS), [_resigned()])[1].validators == raw(EPOCH1)
    check([_resigned(**change)], r"attestations\[0\]: validator 0 of epoch 0 did not sign epoch 1")


def test_link_edited_after_signing() -> None:
    edits: list[Callable[[dict[str, Any]], object]] = [
        lambda lk: lk.update(first_height=6),
        lambda lk: lk["validators"].pop(),
        lambda lk: lk["validators"].__setitem__(0, hexes([OUTSIDER])[0]),
    ]
    for edit in edits:
        one = link(1, 5, EPOCH1, GENESIS)
        edit(one)
        check([one], FORGED)


def test_links_verified_under_another_chain_id() -> None:
    with pytest.raises(EpochLinkError, match=FORGED):
        verify_links("other-chain", raw(GENESIS), chain3())


def test_links_verified_against_other_genesis_keys() -> None:
    with pytest.raises(EpochLinkError, match=r"epochs\[0\]\.attestations\[0\]: .*" + FORGED):
        verify_links(CHAIN, raw(keys("other-genesis", 4)), chain3())


# ------------------------------------------------------------------ shapes
Edit = Callable[[list[dict[str, Any]]], None]


def _link_field(name: str, value: Any) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        links[0][name] = value

    return apply


def _drop_link_field(name: str) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        del links[0][name]

    return apply


def _att_field(name: str, value: Any) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        links[0]["attestations"][1][name] = value

    return apply


def _drop_att_field(name: str) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        del links[0]["attestations"][1][name]

    return apply


def _validator(value: Any) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        links[0]["validators"][2] = value

    return apply


def _replace_link(value: Any) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        links[0] = value

    return apply


def _replace_att(value: Any) -> Edit:
    def apply(links: list[dict[str, Any]]) -> None:
        links[0]["attestations"][1] = value

    return apply


def _dup_validator(links: list[dict[str, Any]]) -> None:
    links[0]["validators"][3] = links[0]["validators"][1]


E0 = r"epochs\[0\]"
A1 = r"epochs\[0\]\.attestations\[1\]"
SHAPES: list[tuple[str, Edit, str]] = [
    ("link not an object", _replace_link([1, 5]), rf"{E0} must have exactly attestations, epoch"),
    ("link missing epoch", _drop_link_field("epoch"), rf"{E0} must have exactly"),
    ("link missing attestations", _drop_link_field("attestations"), rf"{E0} must have exactly"),
    ("link extra field", _link_field("note", "x"), rf"{E0} must have exactly"),
    ("epoch bool", _link_field("epoch", True), rf"{E0}\.epoch must be an integer >= 1, got True"),
    ("epoch string", _link_field("epoch", "1"), rf"{E0}\.epoch must be an integer >= 1, got '1'"),
    ("epoch float", _link_field("epoch", 1.0), rf"{E0}\.epoch must be an integer"),
    ("first_height bool", _link_field("first_height", True), rf"{E0}\.first_height must be"),
    ("first_height null", _link_field("first_height", None), rf"{E0}\.first_height must be"),
    ("validators not a list", _link_field("validators", "ab" * 32), rf"{E0}\.validators must"),
    ("validators empty", _link_field("validators", []), rf"{E0}\.validators must list 1\.\.1024"),
    ("validator upper hex", _validator("AB" * 32), rf"{E0}\.validators\[2\] must be 64 lower"),
    ("validator short", _validator("ab" * 31), rf"{E0}\.validators\[2\] must be 64"),
    ("validator not hex", _validator("zz" * 32), rf"{E0}\.validators\[2\] must be 64"),
    ("validator bytes", _validator(b"\x01" * 32), rf"{E0}\.validators\[2\] must be 64"),
    ("validator twice", _dup_validator, rf"{E0}\.validators names a node key twice"),
    ("attestations not a list", _link_field("attestations", {}), rf"{E0}\.attestations must be"),
    ("attestation not an object", _replace_att([1, "ab"]), rf"{A1} must have exactly validator"),
    ("attestation missing sig", _drop_att_field("signature"), rf"{A1} must have exactly"),
    ("attestation missing index", _drop_att_field("validator"), rf"{A1} must have exactly"),
    ("attestation extra field", _att_field("view", 0), rf"{A1} must have exactly"),
    ("index bool", _att_field("validator", True), rf"{A1}\.validator must be an integer >= 0"),
    ("index negative", _att_field("validator", -1), rf"{A1}\.validator must be an integer >= 0"),
    ("index string", _att_field("validator", "1"), rf"{A1}\.validator must be an integer"),
    ("signature short", _att_field("signature", "ab" * 63), rf"{A1}\.signature must be 128"),
    ("signature upper", _att_field("signature", "AB" * 64), rf"{A1}\.signature must be 128"),
    ("signature not hex", _att_field("signature", "zz" * 64), rf"{A1}\.signature must be 128"),
    ("signature null", _att_field("signature", None), rf"{A1}\.signature must be 128"),
]


@pytest.mark.parametrize(("name", "edit", "reason"), SHAPES, ids=[s[0] for s in SHAPES])
def test_malformed_link(name: str, edit: Edit, reason: str) -> None:
    links = chain3()
    verify_links(CHAIN, raw(GENESIS), copy.deepcopy(links))
    edit(links)
    check(links, reason)


def test_too_many_validators() -> None:
    many = [f"{i:064x}" for i in range(MAX_EPOCH_VALIDATORS + 1)]
    check(
        [link_json(1, 5, many, [])],
        rf"{E0}\.validators must list 1\.\.{MAX_EPOCH_VALIDATORS} node keys",
    )


@pytest.mark.parametrize("links", [None, {}, "[]", ({"epoch": 1},)], ids=repr)
def test_links_not_a_list(links: Any) -> None:
    check(links, r"epochs must be a list of at most 100000 links")


def test_too_many_links() -> None:
    check([None] * (MAX_LINKS + 1), rf"epochs must be a list of at most {MAX_LINKS} links")


def test_error_is_a_value_error() -> None:
    assert issubclass(EpochLinkError, ValueError)
