"""Outcomes of transactions: ``ok`` with data, or ``rejected`` with a code and a message.

A rejected transaction is still recorded in its block with its result, so a
client learns why; it changes no state. ``Rejection`` is how schema checks,
authorisation rules and apply functions say no.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Rejection(Exception):
    """A transaction the ledger refuses: ``code`` is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TxResult:
    status: str  # "ok" | "rejected"
    code: str = "ok"
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def ok(data: dict[str, Any] | None = None) -> TxResult:
        return TxResult("ok", "ok", "", data or {})

    @staticmethod
    def rejected(err: Rejection) -> TxResult:
        return TxResult("rejected", err.code, err.message, {})

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "data": self.data,
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> TxResult:
        return TxResult(obj["status"], obj["code"], obj["message"], obj["data"])
