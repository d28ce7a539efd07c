"""Waiting in a functional test: the shared ``wait_until`` (tests/support/waiting.py).

A test never sleeps a fixed time: it waits for what it needs with a deadline,
and a timeout fails it with a message naming what was awaited and the last
state seen (``WaitTimeout``, an ``AssertionError``). Here every wait has the
functional tests' default deadline, ``TIMEOUT``. ``FrameworkError`` is any
other failure the framework sees: a node died, misbehaved or refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import waiting

TIMEOUT = 60.0  # seconds: the default of every wait

WaitTimeout = waiting.WaitTimeout


class FrameworkError(AssertionError):
    """A functional test failed: a node died, misbehaved or refused what it should take."""


def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """``tests.support.waiting.wait_until`` with ``TIMEOUT`` seconds unless told."""
    return waiting.wait_until(what, probe, done, timeout=timeout, interval=interval, check=check)
