"""tests/support: the shared wait and port helpers do what every test relies on."""

from __future__ import annotations

import socket

import pytest

from tests.support.ports import HeldPorts, unused_port
from tests.support.waiting import WaitTimeout, wait_until, wait_until_async


def test_wait_until_returns_the_state_that_satisfied_it() -> None:
    """The awaited state comes back; a timeout names what was awaited and the last state."""
    seen = iter(range(100))
    assert wait_until("three", lambda: next(seen), lambda n: n >= 3, timeout=5, interval=0) == 3
    with pytest.raises(WaitTimeout, match="waiting for never; last observed: 'no'"):
        wait_until("never", lambda: "no", lambda s: False, timeout=0.05, interval=0.01)


async def test_wait_until_async_awaits_coroutine_probes() -> None:
    """A probe that returns an awaitable is awaited before ``done`` sees it."""
    count = 0

    async def probe() -> int:
        nonlocal count
        count += 1
        return count

    assert await wait_until_async("two polls", probe, lambda n: n == 2, timeout=5) == 2
    with pytest.raises(WaitTimeout):
        await wait_until_async("never", probe, lambda n: False, timeout=0.05)


def test_held_ports_cannot_be_bound_by_others_until_released() -> None:
    """A held port refuses a plain bind; ``exactly`` refuses a taken port; release frees it."""
    held = HeldPorts.any(2)
    assert len(set(held.ports)) == 2
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("127.0.0.1", held.ports[0]))
    assert HeldPorts.exactly([held.ports[0]]) is None
    held.release()
    again = HeldPorts.exactly(held.ports)
    assert again is not None and again.ports == held.ports
    again.release()
    assert 0 < unused_port() < 65536
