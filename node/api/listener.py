"""The HTTP listeners of a node, hardened against hostile clients.

aiohttp serves the apps; this module puts a small asyncio protocol in front of
each connection (``_GatedProtocol``, wrapping aiohttp's own) that

- counts the open connections of the listener and of each source address and
  refuses one beyond ``max_connections`` / ``max_connections_per_source`` with
  an immediate ``503 too-many-connections`` and a close (the file handle is
  given back at once: 300 idle connections under a limit of 256 handles used
  to stop both APIs);
- closes a connection whose request head does not arrive within
  ``read_timeout_ms``: counted from the opening (a client that sends nothing,
  or one header a second) or from the first byte of a later request; the
  middleware ``track_requests`` tells it when a head is complete.

aiohttp's own ``keepalive_timeout`` closes idle keep-alive connections
(``keepalive_timeout_ms``); ``read_body`` bounds the wait for a request body
(408 ``request-timeout``), and the rest of a body nobody reads is drained for
at most ``read_timeout_ms`` too. ``RepeatFilter`` rate-limits repeated log lines of
the HTTP stack and of asyncio (one ``socket.accept() out of system resource``
traceback per listener and second once filled 114 MB in 40 s), and
``check_open_files`` compares the process's file-handle limit with what the
configuration may need, raising the soft limit when the hard one allows and
warning with the number otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog
from aiohttp import web

from node.api.errors import ApiError, Handler, code_for_status, error_body
from node.net.addr import parse_host_port
from node.setup.config import NodeConfig

log = structlog.get_logger("hygeia.api")

__all__ = [
    "LEVELDB_OPEN_FILES",
    "ConnectionGate",
    "ListenerLimits",
    "RepeatFilter",
    "check_open_files",
    "install_log_rate_limit",
    "open_files_needed",
    "read_body",
    "start_listener",
    "track_requests",
]


class ListenerSection(Protocol):
    """What a listener needs of its config section (``[api]`` or ``[admin]``)."""

    @property
    def listen(self) -> str: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_connections_per_source(self) -> int: ...
    @property
    def read_timeout_ms(self) -> int: ...
    @property
    def keepalive_timeout_ms(self) -> int: ...


@dataclass(frozen=True)
class ListenerLimits:
    max_connections: int = 512
    max_connections_per_source: int = 64
    read_timeout_s: float = 10.0
    keepalive_timeout_s: float = 30.0

    @classmethod
    def of(cls, section: ListenerSection) -> ListenerLimits:
        return cls(
            section.max_connections,
            section.max_connections_per_source,
            section.read_timeout_ms / 1000,
            section.keepalive_timeout_ms / 1000,
        )


DEFAULT_LIMITS: Final = ListenerLimits()


def _canned(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_FULL: Final = _canned(
    503, "Service Unavailable", "too-many-connections", "this listener is at its connection limit"
)
_SOURCE_FULL: Final = _canned(
    503,
    "Service Unavailable",
    "too-many-connections",
    "too many connections from this address; close some or retry later",
)


class ConnectionGate:
    """The open connections of one listener, in all and per source address."""

    def __init__(self, name: str, limits: ListenerLimits) -> None:
        self.name = name
        self.limits = limits
        self.open = 0
        self.per_source: dict[str, int] = {}
        self.refused = {"listener": 0, "source": 0}
        self.timed_out = 0

    def admit(self, source: str) -> str | None:
        """Count a new connection from ``source``; None if admitted, else why not."""
        if self.open >= self.limits.max_connections:
            self.refused["listener"] += 1
            return "listener"
        held = self.per_source.get(source, 0)
        if held >= self.limits.max_connections_per_source:
            self.refused["source"] += 1
            return "source"
        self.open += 1
        self.per_source[source] = held + 1
        return None

    def release(self, source: str) -> None:
        self.open -= 1
        left = self.per_source[source] - 1
        if left:
            self.per_source[source] = left
        else:
            del self.per_source[source]


def _source(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "local"  # a Unix socket or an unknown peer: one shared source


class _GatedProtocol(asyncio.Protocol):
    """One connection: admission by the gate, the request-head timer, and
    everything else passed to aiohttp's protocol for the connection."""

    def __init__(self, gate: ConnectionGate, make_inner: Callable[[], asyncio.Protocol]) -> None:
        self._gate = gate
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._source = ""
        self._idle = True  # no request in progress: waiting for a head
        self._timer: asyncio.TimerHandle | None = None

    @property
    def limits(self) -> ListenerLimits:
        return self._gate.limits

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._source = _source(transport)
        refused = self._gate.admit(self._source)
        if refused is not None:
            log.warning(
                "http connection refused",
                listener=self._gate.name,
                source=self._source,
                limit=refused,
            )
            transport.write(_FULL if refused == "listener" else _SOURCE_FULL)
            transport.close()
            return
        self._transport = transport
        self._inner = self._make_inner()
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._idle and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        inner, self._inner = self._inner, None
        if inner is None:
            return  # refused: never counted
        self._transport = None
        self._gate.release(self._source)
        inner.connection_lost(exc)

    # -- the request-head timer
    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.read_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if not self._idle or self._transport is None:
            return
        self._gate.timed_out += 1
        log.info(
            "http request head not received in time",
            listener=self._gate.name,
            source=self._source,
            timeout_s=self.limits.read_timeout_s,
        )
        self._transport.close()

    def request_started(self) -> None:
        self._idle = False
        self._disarm()

    def request_finished(self) -> None:
        self._idle = True


def _gated(request: web.BaseRequest) -> _GatedProtocol | None:
    transport = request.transport
    proto = transport.get_protocol() if transport is not None else None
    return proto if isinstance(proto, _GatedProtocol) else None


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection that a request head arrived and when its handler is done
    (the outermost middleware of both apps)."""
    proto = _gated(request)
    if proto is not None:
        proto.request_started()
    try:
        return await handler(request)
    finally:
        if proto is not None:
            proto.request_finished()


async def read_body(request: web.Request) -> bytes:
    """The request body, within the listener's ``read_timeout_ms``; 408 otherwise (the
    answer closes the connection: the rest of the body is not waited for)."""
    proto = _gated(request)
    timeout = (proto.limits if proto is not None else DEFAULT_LIMITS).read_timeout_s
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408, "request-timeout", f"request body not received within {timeout:g} s"
        ) from None


async def read_body_up_to(request: web.Request, limit: int) -> bytes:
    """Like ``read_body``, for a route whose bodies may exceed the app's
    ``client_max_size``: at most ``limit`` bytes, ``413 too-large`` beyond (told
    by Content-Length before a byte is read, or once the limit is passed)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too-large", f"request body over {limit} bytes")
    proto = _gated(request)
    timeout = (proto.limits if proto is not None else DEFAULT_LIMITS).read_timeout_s
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too-large", f"request body over {limit} bytes")
                parts.append(chunk)
    except TimeoutError:
        raise ApiError(
            408, "request-timeout", f"request body not received within {timeout:g} s"
        ) from None
    return b"".join(parts)


class _JsonErrorsHandler(web.RequestHandler):
    """aiohttp's protocol, except for a request it cannot parse (a NUL in a header,
    a bad request line) or that fails outside the app: a JSON error body like every
    other error (aiohttp's own is text/plain) and one log line, not a traceback at
    ERROR per hostile request."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        log.info(
            "http request refused by the parser",
            status=status,
            source=request.remote,
            error=str(exc).split("\n", 1)[0] if exc is not None else message,
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        code = code_for_status(status)
        text = "the request is not valid HTTP" if status < 500 else "internal error"
        resp = web.json_response(error_body(code, text), status=status)
        resp.force_close()
        return resp


class _GatedSite(web.TCPSite):
    """A ``TCPSite`` whose connections go through a ``ConnectionGate``."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, gate: ConnectionGate) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        # the arguments the runner gave aiohttp's server for its protocol (keep-alive
        # and lingering times, loggers), for our subclass of that protocol
        kwargs = getattr(server, "_kwargs", {})

        def handler() -> web.RequestHandler:
            return _JsonErrorsHandler(server, loop=loop, **kwargs)

        self._server = await loop.create_server(
            lambda: _GatedProtocol(self.gate, handler),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


async def start_listener(app: web.Application, section: ListenerSection) -> web.AppRunner:
    """Serve ``app`` on ``section.listen`` with the section's limits; the runner
    (``cleanup()`` stops it; ``addresses`` has the bound port)."""
    install_log_rate_limit()
    host, port = parse_host_port(section.listen, allow_zero_port=True)
    limits = ListenerLimits.of(section)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.keepalive_timeout_s,
        # how long the rest of a body a handler did not read (an early error, a 408)
        # is read and dropped before the connection closes: aiohttp's 10 s by default
        lingering_time=limits.read_timeout_s,
    )
    await runner.setup()
    site = _GatedSite(runner, host, port, ConnectionGate(section.listen, limits))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def gates(runner: web.AppRunner) -> list[ConnectionGate]:
    """The gates of a runner's sites (tests and metrics)."""
    return [s.gate for s in runner.sites if isinstance(s, _GatedSite)]


# ------------------------------------------------------------------ logs
class RepeatFilter(logging.Filter):
    """Lets through at most ``burst`` records of one kind (logger, level and
    event, or first line of the message) per ``window_s``; the next record of that
    kind after a suppressed stretch says how many were dropped
    (``suppressed=N``). Remembers at most ``max_kinds`` kinds (oldest forgotten)."""

    def __init__(
        self,
        burst: int = 10,
        window_s: float = 60.0,
        *,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_kinds = max_kinds
        self.clock = clock
        # kind -> [window start, records let through in it, suppressed since]
        self._kinds: OrderedDict[tuple[str, int, str], list[Any]] = OrderedDict()

    @staticmethod
    def _event(record: logging.LogRecord) -> str:
        msg = record.msg
        if isinstance(msg, dict):  # structlog's event dict (ProcessorFormatter)
            return str(msg.get("event", ""))
        return str(msg).split("\n", 1)[0][:200]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, self._event(record))
        now = self.clock()
        state = self._kinds.get(kind)
        if state is None:
            state = self._kinds[kind] = [now, 0, 0]
            while len(self._kinds) > self.max_kinds:
                self._kinds.popitem(last=False)
        else:
            self._kinds.move_to_end(kind)
        if now - state[0] >= self.window_s:
            state[0], state[1] = now, 0
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        if state[2]:
            dropped, state[2] = state[2], 0
            if isinstance(record.msg, dict):
                record.msg = {**record.msg, "suppressed": dropped}
            else:
                record.msg = f"{record.msg} [{dropped} similar lines suppressed]"
        return True


# the loggers of the HTTP stack and of asyncio's accept loop
RATE_LIMITED_LOGGERS: Final = (
    "asyncio",
    "aiohttp.server",
    "aiohttp.access",
    "aiohttp.web",
    "hygeia.api",
)
_filter = RepeatFilter()


def install_log_rate_limit() -> None:
    """Put the shared ``RepeatFilter`` on ``RATE_LIMITED_LOGGERS`` (once)."""
    for name in RATE_LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


# ------------------------------------------------------------------ file handles
# plyvel's default max_open_files: LevelDB keeps up to this many table files open
LEVELDB_OPEN_FILES: Final = 1000
# stdio, the log file, epoll, the executors' pipes, the lock file, libraries
OTHER_FILES: Final = 64


def open_files_needed(cfg: NodeConfig, validators: int) -> int:
    """File handles the node may hold at once under this configuration."""
    peers = validators + len(cfg.p2p.peers)
    links = 2 * peers + 16  # a link each way at worst, and pending handshakes
    http = cfg.api.max_connections + cfg.admin.max_connections
    return LEVELDB_OPEN_FILES + http + links + OTHER_FILES


def check_open_files(
    needed: int,
    *,
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    setrlimit: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to ``needed`` if the hard limit allows; warn
    with the number when it stays below. Returns the soft limit in force."""
    which = resource.RLIMIT_NOFILE
    soft, hard = getrlimit(which)
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited or soft >= needed:
        return soft
    target = needed if hard == unlimited else min(needed, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            setrlimit(which, (target, hard))
            log.info("file-handle limit raised", old=soft, new=target, needed=needed)
            soft = target
    if soft < needed:
        log.warning(
            "file-handle limit too low for the configured connection limits",
            limit=soft,
            needed=needed,
            hint=f"raise it to {needed}: `ulimit -n {needed}`, or LimitNOFILE={needed} "
            "in the systemd unit; or lower api.max_connections / admin.max_connections",
        )
    return soft
