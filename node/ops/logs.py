"""Structured logs: structlog over the standard library's ``logging``, configured once.

``configure`` (or ``configure_from_config``) runs once at start. Output is JSON
lines (one object per line: ``timestamp`` ISO 8601 UTC, ``level``, ``logger``,
``event`` and the bound fields) when the stream is not a terminal or the format
is ``json``, and structlog's readable console renderer on a terminal or with
format ``console``. Records of other libraries (aiohttp, asyncio) that log
through ``logging`` get the same treatment.

Levels: one global level plus per-module levels, applied to stdlib loggers by
name, so ``node.net`` covers ``node.net.peer``. Cost per call: a call below the
lowest configured level is a no-op method (structlog's filtering bound
logger); otherwise one cached ``isEnabledFor`` check, and only enabled events
pay for the timestamp and rendering. Loggers are cached on first use; create
them with ``get_logger(__name__)``.

An optional log file receives the same events; ``reopen`` closes and reopens
it, for log rotation: the daemon calls it from its SIGHUP handler (an asyncio
signal handler, so not in signal context). Context bound with ``bind_node``
or ``bound(...)`` (structlog contextvars) is added to every event of the
current task; ``bind_height`` and ``bind_view`` set the node's live position,
added to every event of the process.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, cast

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, FilteringBoundLogger, Processor

if TYPE_CHECKING:
    from node.setup.config import NodeConfig

__all__ = [
    "LEVELS",
    "LogConfigError",
    "bind_height",
    "bind_node",
    "bind_view",
    "bound",
    "clear_context",
    "configure",
    "configure_from_config",
    "get_logger",
    "reopen",
    "reset",
]

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS: Final = ("auto", "json", "console")


class LogConfigError(ValueError):
    """Logging settings that cannot be applied (bad level or format, unwritable file)."""


class _ReopeningFileHandler(logging.FileHandler):
    """A ``FileHandler`` that can close and reopen its file (after logrotate moved it)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


# what the last ``configure`` installed, so that the next one can take it back
_handlers: list[logging.Handler] = []
_module_loggers: list[str] = []


def _level(name: str, what: str) -> int:
    try:
        return LEVELS[name]
    except KeyError:
        raise LogConfigError(
            f"{what}: unknown level {name!r} (levels: {', '.join(LEVELS)})"
        ) from None


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # closed or detached stream
        return False


def _enrich() -> list[Processor]:
    """What every event gets, from structlog or a foreign ``logging`` record alike:
    context, logger name, level and an ISO 8601 UTC timestamp."""
    return [
        structlog.contextvars.merge_contextvars,
        _merge_live,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _formatter(console: bool, colors: bool) -> ProcessorFormatter:
    if console:
        render: list[Processor] = [
            ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    else:
        render = [
            ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    return ProcessorFormatter(processors=render, foreign_pre_chain=_enrich())


def _uninstall() -> None:
    """Take back what the last ``configure`` installed: its handlers and module levels."""
    root = logging.getLogger()
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    for name in _module_loggers:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _handlers.clear()
    _module_loggers.clear()


def configure(
    *,
    level: str = "info",
    fmt: str = "auto",
    modules: Mapping[str, str] | None = None,
    file: str | Path | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Set up logging for the process (again, replacing an earlier ``configure``).

    ``stream`` defaults to ``sys.stdout``. ``fmt``: ``auto`` (console on a
    terminal, JSON otherwise), ``json`` or ``console``; a ``file`` gets JSON
    unless ``fmt`` is ``console``. ``modules`` maps logger names to levels.
    """
    if fmt not in FORMATS:
        raise LogConfigError(f"log.format: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    root_level = _level(level, "log.level")
    module_levels = {m: _level(lv, f"log.modules.{m}") for m, lv in (modules or {}).items()}
    out = sys.stdout if stream is None else stream

    handlers: list[logging.Handler] = []
    tty = _is_tty(out)
    console_handler = logging.StreamHandler(out)
    console_handler.setFormatter(_formatter(fmt == "console" or (fmt == "auto" and tty), tty))
    handlers.append(console_handler)
    if file is not None:
        path = Path(file)
        try:
            file_handler = _ReopeningFileHandler(path, encoding="utf-8")
        except OSError as e:
            raise LogConfigError(f"log.file: cannot open {path}: {e.strerror}") from None
        file_handler.setFormatter(_formatter(fmt == "console", False))
        handlers.append(file_handler)

    _uninstall()
    root = logging.getLogger()
    root.setLevel(root_level)
    for name, lv in module_levels.items():
        logging.getLogger(name).setLevel(lv)
    for handler in handlers:
        root.addHandler(handler)
    _handlers[:] = handlers
    _module_loggers[:] = list(module_levels)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_enrich(),
            structlog.processors.StackInfoRenderer(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(
            min([root_level, *module_levels.values()])
        ),
        cache_logger_on_first_use=True,
    )


def configure_from_config(cfg: NodeConfig, *, stream: IO[str] | None = None) -> None:
    """``configure`` with the ``[log]`` section of a loaded node configuration."""
    configure(
        level=cfg.log.level,
        fmt=cfg.log.format,
        modules=cfg.log.modules,
        file=cfg.log_file_path,
        stream=stream,
    )


def reset() -> None:
    """Undo ``configure``: remove its handlers and levels, structlog's defaults (for tests)."""
    _uninstall()
    logging.getLogger().setLevel(logging.WARNING)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def reopen() -> None:
    """Reopen the log file (if any): call it on SIGHUP after the file was rotated."""
    for handler in _handlers:
        if isinstance(handler, _ReopeningFileHandler):
            handler.reopen()


def get_logger(name: str) -> FilteringBoundLogger:
    """The logger of a module: ``log = get_logger(__name__)``."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))


# ------------------------------------------------------------------ context
def bind_node(node_id: str) -> None:
    """Add ``node_id`` to every later event of the process (one node per process)."""
    _live["node_id"] = node_id


# The node's live position (height, view) changes in one task (the consensus
# driver) but belongs on every event of the process, whatever task logs it:
# it is kept here and merged by a processor instead of in contextvars.
_live: dict[str, Any] = {}


def bind_height(height: int) -> None:
    _live["height"] = height


def bind_view(view: int) -> None:
    _live["view"] = view


def _merge_live(logger: Any, method: str, event: EventDict) -> EventDict:
    for key, value in _live.items():
        event.setdefault(key, value)
    return event


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
    _live.clear()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` for the duration of a ``with`` block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield
