"""One list of API error codes (``node.api.errors.ERROR_CODES``), one spelling,
the same table in docs/transactions.md, and every code the source can answer
is in it with its status."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from node.api.errors import ERROR_CODES, code_for_status, render_error_table
from node.core.uint import parse_uint

ROOT = Path(__file__).resolve().parents[2]

# (call name, index of the code argument, index of the status argument or None)
ERROR_CALLS = {
    "ApiError": (1, 0),
    "error_response": (1, 0),
    "MempoolError": (0, None),
    "TxError": (0, None),
}


def emitted_codes() -> list[tuple[str, Any, Any]]:
    """(where, code, status) of every literal code given to an API error in node/."""
    found = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for n in ast.walk(tree):
            if not isinstance(n, ast.Call) or not isinstance(n.func, ast.Name):
                continue
            if n.func.id not in ERROR_CALLS:
                continue
            code_at, status_at = ERROR_CALLS[n.func.id]
            code = n.args[code_at] if len(n.args) > code_at else None
            if not isinstance(code, ast.Constant):
                continue
            status = None
            given = n.args[status_at] if status_at is not None else None
            if isinstance(given, ast.Constant):
                status = given.value
            found.append((f"{path.relative_to(ROOT)}:{n.lineno}", code.value, status))
    return found


def test_every_emitted_code_is_listed_with_its_status() -> None:
    found = emitted_codes()
    assert len(found) >= 20, found  # the scan sees the calls
    for where, code, status in found:
        assert code in ERROR_CODES, f"{where}: {code!r} is not in ERROR_CODES"
        if status is not None:
            assert ERROR_CODES[code][0] == status, f"{where}: {code} with status {status}"


def test_one_spelling() -> None:
    for code in ERROR_CODES:
        assert code == code.lower() and "_" not in code and " " not in code, code


def test_docs_show_the_table() -> None:
    doc = (ROOT / "docs" / "transactions.md").read_text(encoding="utf-8")
    assert render_error_table() in doc, (
        "docs/transactions.md: the Error codes table differs from node.api.errors.ERROR_CODES"
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 408, 413, 415, 500, 503])
def test_aiohttp_errors_map_to_listed_codes(status: int) -> None:
    assert code_for_status(status) in ERROR_CODES


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("007", 7),
        ("9223372036854775807", 2**63 - 1),
        ("", None),
        ("²", None),
        ("١٢", None),  # Arabic-Indic digits: int() would take them
        ("１", None),  # fullwidth
        ("+1", None),
        ("-1", None),
        (" 1", None),
        ("1_0", None),
        ("1" * 20, None),
        ("9" * 5000, None),
    ],
)
def test_parse_uint(text: str, value: int | None) -> None:
    assert parse_uint(text) == value


def test_parse_uint_digit_bound() -> None:
    assert parse_uint("1234", 3) is None and parse_uint("123", 3) == 123
