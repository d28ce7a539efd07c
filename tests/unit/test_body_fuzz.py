"""Hypothesis strategies for canonical JSON and for the body schema of every
transaction type (``node/ledger/schema.py``), and the properties hostile input
must not break (issue 11):

- canonical JSON: any JSON value within the model encodes, parses back equal,
  and re-encodes to the same bytes; arbitrary bytes either parse or raise
  ``CodecError``, nothing else;
- every transaction type: a body drawn from its own schema, and that body with
  one field replaced by an arbitrary JSON value or dropped, is accepted or
  refused with ``Rejection("malformed")``, never another exception; a whole
  transaction with such a body goes through ``decode_tx`` and the ledger's
  admission check the same way.

The strategies follow the schema classes (``Str`` with its pattern or choices,
``Hex64``, ``Int``, ``Bool``, ``List``, ``Obj`` with its optional fields);
domain subclasses of them (a GS1 key, a date) get their base class's values,
which their extra rules may refuse: that is the "refused" half of the property.
"""

from __future__ import annotations

import contextlib
from typing import Any

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core.codec import INT64_MAX, INT64_MIN, CodecError, canonical_json, parse_json
from node.core.tx import TxError, build_tx, decode_tx
from node.ledger.domains import DOMAINS
from node.ledger.executor import Ledger
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Bool, Check, Hex64, Int, List, Obj, Str

KEY = nacl.signing.SigningKey(bytes(range(32)))
CHAIN = "hygeia-fuzz"
TX_TYPES: list[TxType] = [t for d in DOMAINS for t in d.tx_types]
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies
json_scalars = st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def from_check(check: Check) -> st.SearchStrategy[Any]:
    """Values that the schema class (not a domain's extra rules) accepts."""
    if isinstance(check, Obj):
        required = {k: from_check(c) for k, c in check.fields.items() if not c.optional}
        optional = {k: from_check(c) for k, c in check.fields.items() if c.optional}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(check, List):
        return st.lists(
            from_check(check.item),
            min_size=check.min_items,
            max_size=min(check.max_items, check.min_items + 3),
            unique_by=repr if check.unique else None,
        )
    if isinstance(check, Str):
        if check.choices:
            return st.sampled_from(check.choices)
        if check.pattern is not None:
            return st.from_regex(check.pattern, fullmatch=True).filter(
                lambda s: check.min_len <= len(s) <= check.max_len
            )
        return st.text(min_size=check.min_len, max_size=min(check.max_len, check.min_len + 20))
    if isinstance(check, Hex64):
        return st.binary(min_size=32, max_size=32).map(bytes.hex)
    if isinstance(check, Int):
        return st.integers(check.min, check.max)
    if isinstance(check, Bool):
        return st.booleans()
    return json_values  # a domain's own Check (governance actions): anything JSON


@st.composite
def mutated(draw: st.DrawFn, check: Obj) -> dict[str, Any]:
    """A body of ``check`` with one field replaced by arbitrary JSON, dropped, or added."""
    body: dict[str, Any] = dict(draw(from_check(check)))
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "add" or not body:
        body[draw(st.text(max_size=8))] = draw(json_values)
    elif how == "drop":
        del body[draw(st.sampled_from(sorted(body)))]
    else:
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    return body


def bodies(tx_type: TxType) -> st.SearchStrategy[Any]:
    return from_check(tx_type.schema) | mutated(tx_type.schema) | json_values


# ------------------------------------------------------------------ canonical JSON
@FUZZ
@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    encoded = canonical_json(value)
    assert parse_json(encoded) == value
    assert canonical_json(parse_json(encoded)) == encoded


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: canonical_json(v)[:-1]))
def test_parse_json_refuses_with_codec_error_only(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        parse_json(data)


# ------------------------------------------------------------------ transaction bodies
@pytest.mark.parametrize("tx_type", TX_TYPES, ids=[t.name for t in TX_TYPES])
def test_every_body_schema_accepts_or_refuses_malformed(tx_type: TxType) -> None:
    @FUZZ
    @given(bodies(tx_type))
    def check(body: Any) -> None:
        try:
            tx_type.schema.check(body, "")
        except Rejection as rej:
            assert rej.code == "malformed", (rej.code, rej.message)

    check()


@pytest.mark.parametrize("tx_type", TX_TYPES, ids=[t.name for t in TX_TYPES])
def test_every_transaction_type_survives_admission(tx_type: TxType) -> None:
    ledger = Ledger()

    @FUZZ
    @given(bodies(tx_type), st.integers(0, 2**63 - 1))
    def check(body: Any, nonce: int) -> None:
        if not isinstance(body, dict):
            body = {"value": body}
        try:
            tx = build_tx(CHAIN, tx_type.name, body, KEY, nonce)
        except TxError as err:  # e.g. a body too deep or too large for a transaction
            assert err.code in ("bad-field", "too-large"), err.code
            return
        decoded = decode_tx(tx.wire, chain_id=CHAIN)
        assert decoded.wire == tx.wire and decoded.verify_signature()
        try:
            ledger.check_tx(decoded)
        except Rejection as rej:
            assert rej.code == "malformed", (rej.code, rej.message)

    check()
