"""One list of API error codes (``node.api.errors.ERROR_CODES``), one spelling,
the same table in docs/transactions.md, and every code the source can answer
is in it with its status."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from node.api.errors import ERROR_CODES, code_for_status, render_error_table
from node.core.uint import parse_uint

ROOT = Path(__file__).resolve().parents[2]
KEBAB = re.compile(r"[a-z]+(-[a-z]+)*")  # lower-case words joined by "-"

# (call name, index of the code argument, index of the status argument or None)
ERROR_CALLS: dict[str, tuple[int, int | None]] = {
    "ApiError": (1, 0),
    "error_response": (1, 0),
    "error_body": (0, None),
    "_canned": (2, 0),  # node/api/listener.py: the answers written before aiohttp runs
    "MempoolError": (0, None),
    "TxError": (0, None),
}
# where the HTTP layer answers: every code given to an error there is a literal of
# ERROR_CODES or comes from one of these (a code already checked where it is made)
HTTP_SOURCES = [ROOT / "node" / "daemon.py", *sorted((ROOT / "node" / "api").rglob("*.py"))]
PASSED_ON = {
    "code",  # a helper's own parameter (error_response, error_body, _canned)
    "err.code",  # TxError, MempoolError: their literals are scanned below
    "rej.code",  # a ledger Rejection: kebab-case (test_ledger_codes_are_kebab_case)
    "code_for_status(exc.status)",  # aiohttp's own errors (test_aiohttp_errors_map...)
    "code_for_status(status)",
    "exc.code",  # node/api/documents.py: an ExchangeError (test_exchange_codes_are_listed)
}


def error_calls(
    paths: list[Path], calls: dict[str, tuple[int, int | None]] = ERROR_CALLS
) -> list[tuple[str, ast.expr | None, Any]]:
    """(where, code argument, literal status or None) of every call of ``calls``."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for n in ast.walk(tree):
            if not isinstance(n, ast.Call) or not isinstance(n.func, ast.Name):
                continue
            if n.func.id not in calls:
                continue
            code_at, status_at = calls[n.func.id]
            code = n.args[code_at] if len(n.args) > code_at else None
            given = n.args[status_at] if status_at is not None else None
            status = given.value if isinstance(given, ast.Constant) else None
            found.append((f"{path.relative_to(ROOT)}:{n.lineno}", code, status))
    return found


def emitted_codes() -> list[tuple[str, Any, Any]]:
    """(where, code, status) of every literal code given to an API error in node/."""
    return [
        (where, code.value, status)
        for where, code, status in error_calls(sorted((ROOT / "node").rglob("*.py")))
        if isinstance(code, ast.Constant)
    ]


def test_the_http_layer_answers_only_declared_or_checked_codes() -> None:
    """node/api and node/daemon.py make no code of their own outside ERROR_CODES:
    each is a listed literal or passes on a code checked where it is made."""
    found = error_calls(HTTP_SOURCES)
    assert len(found) >= 25, found
    for where, code, _ in found:
        assert code is not None, f"{where}: no code argument"
        if isinstance(code, ast.Constant):
            assert code.value in ERROR_CODES, f"{where}: {code.value!r} is not in ERROR_CODES"
        else:
            assert ast.unparse(code) in PASSED_ON, f"{where}: code {ast.unparse(code)}"


def test_ledger_codes_are_kebab_case() -> None:
    """A ledger ``Rejection`` reaches a client as a 400's code: one spelling there too."""
    node_files = sorted((ROOT / "node").rglob("*.py"))
    codes = [
        (where, code.value)
        for where, code, _ in error_calls(node_files, {"Rejection": (0, None)})
        if isinstance(code, ast.Constant)
    ]
    assert len(codes) >= 50, codes
    for where, code in codes:
        assert isinstance(code, str) and KEBAB.fullmatch(code), f"{where}: {code!r}"


def test_every_emitted_code_is_listed_with_its_status() -> None:
    found = emitted_codes()
    assert len(found) >= 20, found  # the scan sees the calls
    for where, code, status in found:
        assert code in ERROR_CODES, f"{where}: {code!r} is not in ERROR_CODES"
        if status is not None:
            assert ERROR_CODES[code][0] == status, f"{where}: {code} with status {status}"


def test_one_spelling() -> None:
    for code in ERROR_CODES:
        assert KEBAB.fullmatch(code), code


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


def test_exchange_codes_are_listed() -> None:
    """The document routes answer ``node.exchange.service``'s codes: every literal
    code of an ``ExchangeError`` (and of a ticket refusal or signed-request error it
    passes on) has its status in ``STATUS``, in one spelling."""
    from node.exchange.service import STATUS
    from node.exchange.ticket import REFUSAL_CODES

    calls = {"ExchangeError": (0, None), "TicketRefused": (0, None), "SignedRequestError": (1, 0)}
    found = error_calls(sorted((ROOT / "node" / "exchange").rglob("*.py")), calls)
    assert len(found) >= 20, found
    for where, code, status in found:
        if isinstance(code, ast.Constant):
            literal = str(code.value)
            assert literal in STATUS, f"{where}: {literal!r} is not in STATUS"
            if status is not None:
                assert STATUS[literal] == status, f"{where}: {literal} with {status}"
    assert set(REFUSAL_CODES) <= set(STATUS)
    for listed in STATUS:
        assert KEBAB.fullmatch(listed), listed
