"""A ledger domain: its transaction types and its read-only queries.

Each use of the ledger (anchors, health records, supply chain, trials,
claims, governance) is one module exporting a ``Domain``. The executor
registers every domain's transaction types; the client API serves every
domain's queries under ``/v1`` (and lists them in the OpenAPI document).

A query function gets a read-only ``BlockState`` over the committed state,
the path parameters and the query-string parameters, and returns JSON data,
or None for 404. It raises ``Rejection`` for a bad parameter (400); the
``*_param`` helpers below check the common kinds of parameter with one message
each, so every domain words the same mistake the same way.

A query that reads one patient's data declares it with a ``PatientScope``
(``Query.scope``): the path parameter that is the patient's key and the members
who may read it besides the patient. The client API then serves it only to a
signed request (``X-Hygeia-*`` headers, node/exchange/signed_request.py) whose
signer ``PatientScope.entitled`` admits (docs/privacy.md, "Who may read what").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.ledger.members import is_active, member_of
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.state import BlockState

QueryFn = Callable[[BlockState, Mapping[str, str], Mapping[str, str]], Any]
# the ids of the members a patient-scoped read names (the enroller, the insurer, ...)
NamedFn = Callable[[BlockState, Mapping[str, str]], Iterable[str]]


@dataclass(frozen=True)
class PatientScope:
    """Who may read a patient-scoped query: the key in path parameter ``param``
    itself, an active member holding one of ``roles``, or an active member whose id
    ``named`` returns for the path (it may raise ``Rejection`` for a bad parameter).
    ``who`` says the members in words (the OpenAPI document, the docs)."""

    param: str
    who: str
    roles: tuple[str, ...] = ()
    named: NamedFn | None = None

    def entitled(self, state: BlockState, path: Mapping[str, str], signer_hex: str) -> bool:
        """May the key ``signer_hex`` (64 lowercase hex) read this query at ``path``?"""
        if signer_hex == path.get(self.param):
            return True
        member = member_of(state, signer_hex)
        if member is None or not is_active(member):
            return False
        if self.roles and is_active(member, *self.roles):
            return True
        return self.named is not None and member["id"] in set(self.named(state, path))


@dataclass(frozen=True)
class Query:
    path: str  # aiohttp route below /v1, e.g. "/records/{record_id}"
    fn: QueryFn
    summary: str
    params: tuple[str, ...] = ()  # query-string parameters, for the OpenAPI document
    scope: PatientScope | None = None  # a patient's data: signed, entitled readers only


@dataclass(frozen=True)
class Domain:
    name: str
    tx_types: tuple[TxType, ...]
    queries: tuple[Query, ...] = field(default=())


def ids_after(state: BlockState, prefix: bytes, after: str) -> Iterator[tuple[str, Any]]:
    """(id, value) of the keys under ``prefix`` in key order, those whose id (the key
    after the prefix) sorts after ``after``: the ``after`` cursor of a paged list."""
    for key, value in state.iter_prefix(prefix):
        ident = key[len(prefix) :].decode()
        if ident > after:
            yield ident, value


def int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """The query-string integer ``name`` in ``lo..hi``, or ``default`` when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    value = parse_uint(raw, len(str(hi)))
    if value is None or not lo <= value <= hi:
        raise Rejection("malformed", f"{name} must be an integer in {lo}..{hi}")
    return value


def hex64_param(value: str, name: str) -> str:
    """A parameter that is a SHA-256 digest or a public key (64 lowercase hex)."""
    if not HEX64.fullmatch(value):
        raise Rejection("malformed", f"{name} must be 64 lowercase hex characters")
    return value


def pattern_param(value: str, name: str, pattern: re.Pattern[str]) -> str:
    """A parameter that must match ``pattern`` whole (an id, a code)."""
    if not pattern.fullmatch(value):
        raise Rejection("malformed", f"{name} must match {pattern.pattern}")
    return value
