"""Waiting in a test: poll for a condition with a deadline, never sleep a fixed time.

``wait_until`` (blocking) and ``wait_until_async`` (in an event loop; the probe
may be a coroutine function) share one rule: poll ``probe()`` until
``done(state)``, return that state, and on timeout fail with a message naming
what was awaited and the last state seen. The error is an ``AssertionError``,
so pytest reports it as a test failure.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WaitTimeout", "wait_until", "wait_until_async"]


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message names what was awaited and the last state."""


def _timed_out(what: str, timeout: float, state: Any) -> WaitTimeout:
    return WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last observed: {state!r}")


def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``probe()`` until ``done(state)``; return that state. ``check`` runs before
    every probe (e.g. "every node is still running") and may raise."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        state = probe()
        if done(state):
            return state
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, state)
        time.sleep(interval)


async def wait_until_async(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.02,
) -> Any:
    """``wait_until`` inside an event loop: the loop keeps running between probes, and
    a probe that returns an awaitable is awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = probe()
        if inspect.isawaitable(state):
            state = await state
        if done(state):
            return state
        if loop.time() >= deadline:
            raise _timed_out(what, timeout, state)
        await asyncio.sleep(interval)
