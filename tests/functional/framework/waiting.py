"""Waiting in a functional test: ``wait_until``, the one way to poll for a condition.

A test never sleeps a fixed time: it waits for what it needs with a deadline,
and a timeout fails it with a message naming what was awaited and the last
state seen (``FrameworkError``, an ``AssertionError``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 60.0  # seconds: the default of every wait


class FrameworkError(AssertionError):
    """A functional test failed: a wait timed out, a node died or misbehaved."""


# ------------------------------------------------------------------ waiting
def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``probe()`` until ``done(state)``; return that state.

    ``check`` runs before every probe (e.g. "every node is still running") and
    may raise. On timeout raise ``FrameworkError`` naming ``what`` and the
    last state observed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        state = probe()
        if done(state):
            return state
        if time.monotonic() >= deadline:
            raise FrameworkError(
                f"timed out after {timeout:g}s waiting for {what}; last observed: {state!r}"
            )
        time.sleep(interval)
