"""JSON error bodies, the list of error codes, and the middleware that makes them.

Every error answer is ``{"error": {"code": str, "message": str}}`` with a
stable code, never an HTML page or a traceback. ``ERROR_CODES`` is the one
list of the codes the HTTP APIs answer (docs/transactions.md, "Error codes",
shows the same table; a test keeps them equal): lower-case words joined by
``-``, the spelling of the ledger's rejection codes, which a 400 from
``POST /v1/txs`` or a query may also carry (``unknown-type``, ``replay``, ...:
those of each domain are listed in its own page).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import structlog
from aiohttp import web

from node.core.tx import TxError
from node.ledger.result import Rejection
from node.mempool import MempoolError

log = structlog.get_logger("hygeia.api")

# code -> (HTTP status, what it means); docs/transactions.md renders this table
ERROR_CODES: Final[dict[str, tuple[int, str]]] = {
    "malformed": (400, "a path, query or body value is not well-formed; the message says which"),
    "missing-field": (400, "the transaction lacks one of its six keys"),
    "unknown-field": (400, "the transaction has a key beyond its six"),
    "bad-field": (400, "a transaction field of the wrong type or form"),
    "wrong-chain": (400, "the transaction's `chain_id` is not this chain's"),
    "bad-signature": (400, "the signature does not verify for `signer`"),
    "unknown-type": (400, "no transaction type of that name"),
    "replay": (400, "a transaction with this hash is already committed"),
    "unauthorized": (401, "admin API: missing or wrong bearer token"),
    "signature-required": (
        401,
        "a patient's data (a patient-scoped query) is read by signed requests only, and this "
        "one has no `X-Hygeia-*` header (docs/privacy.md)",
    ),
    "signer-not-allowed": (
        403,
        "by the committed state, `signer` may not sign this type: not a key of an active "
        "member with one of its roles, nor an enrolled patient key for a patient's type",
    ),
    "not-entitled": (
        403,
        "the signer of a patient-scoped query is neither the patient key nor an active member "
        "the query entitles (docs/privacy.md)",
    ),
    "not-found": (404, "no such route, block, proof or record"),
    "not-connected": (404, "admin API: no link to that peer"),
    "method-not-allowed": (405, "the route exists for other methods (see the `Allow` header)"),
    "request-timeout": (408, "the request body did not arrive in time (`read_timeout_ms`)"),
    "exists": (409, "admin API: the backup file already exists"),
    "too-large": (413, "the request body or the transaction is over its size limit"),
    "internal": (500, "a bug; the node's log has the details"),
    "mempool-full": (503, "the mempool is at its count or byte limit; retry later"),
    "signer-quota": (503, "this signer has too many pending transactions; retry later"),
    "too-many-connections": (503, "the listener or this client is at its connection limit"),
    "state-syncing": (503, "the node is restoring a snapshot (state sync); use another node"),
    "not-yet-backfilled": (
        404,
        "the node was state-synced from a snapshot: blocks (and their proofs) below its "
        "base height are not here; ask a node that has them",
    ),
    "not-attested": (
        503,
        "a proof needs a validator change's attestations (`epoch.attest`) that are not "
        "on chain yet; retry shortly",
    ),
}

# aiohttp's own HTTP errors (no route, wrong method, body over client_max_size)
_BY_STATUS: Final = {
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    413: "too-large",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Turns the refusals of the layers below into ``ApiError``s: a transaction that
    does not decode or check (``TxError``: its code's status in ``ERROR_CODES``), a
    ledger ``Rejection`` (400, the ledger's code) and a mempool refusal (its status)."""
    try:
        yield
    except TxError as err:
        raise ApiError(ERROR_CODES[err.code][0], err.code, str(err)) from None
    except Rejection as rej:
        raise ApiError(400, rej.code, rej.message) from None
    except MempoolError as err:
        raise ApiError(err.http_status, err.code, err.message) from None


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers)


def render_error_table() -> str:
    """``ERROR_CODES`` as the Markdown table of docs/transactions.md ("Error codes")."""
    rows = ["| code | HTTP | meaning |", "|---|---|---|"]
    rows += [f"| `{code}` | {status} | {what} |" for code, (status, what) in ERROR_CODES.items()]
    return "\n".join(rows) + "\n"


def code_for_status(status: int) -> str:
    """The code of an HTTP error raised by aiohttp itself (not by a handler)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return "internal" if status >= 500 else "malformed"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# headers of an aiohttp HTTP error that the JSON answer keeps (405 must say Allow)
_KEPT_HEADERS: Final = ("Allow", "Retry-After")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        resp = error_response(err.status, err.code, err.message)
        if err.status == 408:  # the rest of a slow body is not waited for
            resp.force_close()
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {h: exc.headers[h] for h in _KEPT_HEADERS if h in exc.headers}
        message = f"{request.method} {request.path}: {exc.reason}"
        return error_response(exc.status, code_for_status(exc.status), message, kept)
    except Exception as exc:  # never a traceback to the client; logged for the operator
        log.exception("request failed", path=request.path, error=str(exc))
        return error_response(500, "internal", "internal error; see the node's log")
