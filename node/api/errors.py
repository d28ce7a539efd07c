"""JSON error bodies and the middleware that turns exceptions into them.

Every error answer is ``{"error": {"code": str, "message": str}}`` with a
stable code, never an HTML page or a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger("hygeia.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "-")
        return error_response(exc.status, code, f"{request.method} {request.path}: {exc.reason}")
    except Exception as exc:  # never a traceback to the client; logged for the operator
        log.exception("request failed", path=request.path, error=str(exc))
        return error_response(500, "internal", "internal error; see the node's log")
