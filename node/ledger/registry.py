"""Transaction types: each has a body schema, an authorisation rule and an apply function.

``check`` (schema) runs before mempool admission and again at execution;
``authorize`` decides who may sign it; ``apply`` changes state through the
context and returns the result data, or raises ``Rejection``. Every function
is deterministic: block time only, no floats, no unordered iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.ledger.context import ExecContext
from node.ledger.result import Rejection
from node.ledger.schema import Obj


@dataclass(frozen=True)
class TxType:
    name: str
    schema: Obj
    authorize: Callable[[ExecContext], None]
    apply: Callable[[ExecContext], dict[str, Any]]
    summary: str = ""


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, TxType] = {}

    def register(self, tx_type: TxType) -> None:
        if tx_type.name in self._types:
            raise ValueError(f"ledger: transaction type {tx_type.name} registered twice")
        self._types[tx_type.name] = tx_type

    def get(self, name: str) -> TxType:
        t = self._types.get(name)
        if t is None:
            raise Rejection("unknown-type", f"unknown transaction type {name!r}")
        return t

    def names(self) -> list[str]:
        return sorted(self._types)

    def check_body(self, name: str, body: Any) -> None:
        self.get(name).schema.check(body, "")
