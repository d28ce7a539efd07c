"""The client API's document routes (docs/document-exchange.md).

``POST /v1/documents``: a custodian member's signed request publishes a FHIR
resource (kept in the node's encrypted store) and submits its ``record.anchor``;
``202 {"hash", "record_id", "version_id"}``.

``GET /v1/documents/{version_id}?access=<ticket hash>``: a member's signed
request fetches a version from its custodian's node under a committed access
(the ticket); ``200 {"version_id", "sealed"}``, the resource and salt sealed to
the requesting member's key.

Both are signed requests (``X-Hygeia-Signer``, ``X-Hygeia-Time``,
``X-Hygeia-Signature``); the work and every refusal code are
``node.exchange.service``'s (its ``STATUS`` table, docs/document-exchange.md:
a few codes mean something else there than in ``ERROR_CODES``, e.g. a signed
request's ``bad-signature`` is 401), turned here into the API's JSON errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aiohttp import web

from node.api.errors import ApiError
from node.api.listener import read_body_up_to
from node.core.hexstr import HEX64
from node.exchange.service import MAX_PUBLISH_BODY, DocumentExchange, ExchangeError

DOCUMENTS_KEY: web.AppKey[DocumentExchange] = web.AppKey("documents", DocumentExchange)


@contextlib.contextmanager
def _exchange_errors() -> Iterator[None]:
    try:
        yield
    except ExchangeError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


async def post_document(request: web.Request) -> web.Response:
    body = await read_body_up_to(request, MAX_PUBLISH_BODY)
    with _exchange_errors():
        answer = await request.app[DOCUMENTS_KEY].publish(request.raw_path, request.headers, body)
    return web.json_response(answer, status=202)


async def get_document(request: web.Request) -> web.Response:
    version_id = request.match_info["version_id"]
    ticket = request.query.get("access")
    with _exchange_errors():
        if not HEX64.fullmatch(version_id):
            raise ExchangeError("unknown-version", "a version id is 64 lower-case hex characters")
        answer = await request.app[DOCUMENTS_KEY].fetch(
            request.raw_path, request.headers, version_id, ticket
        )
    return web.json_response(answer)


def add_document_routes(app: web.Application, documents: DocumentExchange) -> None:
    app[DOCUMENTS_KEY] = documents
    app.router.add_post("/v1/documents", post_document)
    app.router.add_get("/v1/documents/{version_id}", get_document)
