"""A ledger domain: its transaction types and its read-only queries.

Each use of the ledger (anchors, health records, supply chain, trials,
claims, governance) is one module exporting a ``Domain``. The executor
registers every domain's transaction types; the client API serves every
domain's queries under ``/v1`` (and lists them in the OpenAPI document).

A query function gets a read-only ``BlockState`` over the committed state,
the path parameters and the query-string parameters, and returns JSON data,
or None for 404. It raises ``Rejection`` for a bad parameter (400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.ledger.registry import TxType
from node.ledger.state import BlockState

QueryFn = Callable[[BlockState, Mapping[str, str], Mapping[str, str]], Any]


@dataclass(frozen=True)
class Query:
    path: str  # aiohttp route below /v1, e.g. "/records/{record_id}"
    fn: QueryFn
    summary: str
    params: tuple[str, ...] = ()  # query-string parameters, for the OpenAPI document


@dataclass(frozen=True)
class Domain:
    name: str
    tx_types: tuple[TxType, ...]
    queries: tuple[Query, ...] = field(default=())
