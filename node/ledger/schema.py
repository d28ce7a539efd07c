"""Declarative checks of transaction bodies, with errors that say where.

A body schema is an ``Obj`` of named fields; every field is required unless
``optional=True``, and unknown keys are refused (so no free-form field can
smuggle personal data onto the chain). Strings are bounded; free text is
short by design and the docs say it must not hold PHI.

Why this is not the msgspec validation that config, genesis, scenario files and
testnet.json use (``node/core/strict.py``): a rejected transaction's message is
part of its committed result, and results are covered by the state root. Every
node, of every release, must word the same rejection of the same body the same
way, byte for byte. These few checks are written out here so that their messages
are ours and fixed (a library upgrade that rewords its errors would fork the
chain), and a pattern's text (``must match ^[0-9a-f]{64}$``) is pinned by
``tests/unit/test_hexstr.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.core.hexstr import HEX64
from node.ledger.result import Rejection
from node.net.addr import parse_host_port

# a DNS name is at most 253 characters, then ":" and a port of at most 5 digits
MAX_P2P_LEN = 259


def malformed(path: str, why: str) -> Rejection:
    return Rejection("malformed", f"body.{path}: {why}" if path else f"body: {why}")


class Check:
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError


@dataclass
class Str(Check):
    max_len: int = 64
    min_len: int = 1
    pattern: re.Pattern[str] | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise malformed(path, "must be a string")
        if not self.min_len <= len(value) <= self.max_len:
            raise malformed(path, f"length must be {self.min_len}..{self.max_len}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise malformed(path, f"must match {self.pattern.pattern}")
        if self.choices and value not in self.choices:
            raise malformed(path, f"must be one of {', '.join(self.choices)}")


class HostPort(Str):
    """``HOST:PORT`` (``[v6]:PORT``) as ``node.net.addr.parse_host_port`` accepts it (the
    one address rule of config, genesis and the transport). The message is worded here,
    not by the parser; which addresses pass is the parser's rule, so a change to it
    changes which transactions naming an address commit."""

    def __init__(self, optional: bool = False) -> None:
        super().__init__(max_len=MAX_P2P_LEN, optional=optional)

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        try:
            parse_host_port(value)
        except ValueError:
            raise malformed(
                path, "must be HOST:PORT ([IPv6]:PORT for IPv6) with a port in 1..65535"
            ) from None


@dataclass
class Hex64(Check):
    """A SHA-256 digest or an Ed25519 public key: 64 lowercase hex characters."""

    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not HEX64.fullmatch(value):
            raise malformed(path, "must be 64 lowercase hex characters")


@dataclass
class Int(Check):
    min: int = 0
    max: int = (1 << 63) - 1
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise malformed(path, "must be an integer")
        if not self.min <= value <= self.max:
            raise malformed(path, f"must be in {self.min}..{self.max}")


@dataclass
class Bool(Check):
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise malformed(path, "must be true or false")


@dataclass
class List(Check):
    item: Check
    max_items: int = 64
    min_items: int = 0
    unique: bool = False
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise malformed(path, "must be a list")
        if not self.min_items <= len(value) <= self.max_items:
            raise malformed(path, f"must have {self.min_items}..{self.max_items} items")
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]")
        if self.unique:
            seen: dict[Any, None] = {}
            for i, v in enumerate(value):
                key = repr(v)
                if key in seen:
                    raise malformed(f"{path}[{i}]", "duplicate item")
                seen[key] = None


@dataclass
class Obj(Check):
    fields: Mapping[str, Check] = field(default_factory=dict)
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise malformed(path, "must be an object")
        for key in sorted(value):
            if key not in self.fields:
                raise malformed(f"{path}.{key}" if path else key, "unknown field")
        for name, chk in self.fields.items():
            sub = f"{path}.{name}" if path else name
            if name not in value:
                if not chk.optional:
                    raise malformed(sub, "is required")
                continue
            chk.check(value[name], sub)
