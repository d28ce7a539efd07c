"""Functional: a validator whose data directory fills up stops writing, says so, and recovers.

Node 1's database is moved onto a small tmpfs (``tests.chaos.disk.SmallDisk``;
needs root to mount, else the tests are skipped with the reason), which is then
filled to the last byte while the others keep committing. Node 1 must keep
running without writing (no crash, no partial write, no vote it could not
persist), report the storage failure on ``/health`` and in one log line, and,
once space is back, catch up by itself to one chain with the others; after a
``kill -9`` its database opens with that chain intact. Killed in the middle of
the episode, it refuses to start on the still-full disk (one clear line, exit
status 1) and starts with its chain intact once there is room.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chaos.disk import SmallDisk, mount_denied
from tests.functional.framework import TIMEOUT, TestNetwork, run_hygeia, wait_until
from tests.functional.framework.node import configure_home

VICTIM = 1  # a backup: the view-0 primary is node 0
OTHERS = [0, 2, 3]
DISK_BYTES = 24 << 20  # room for the copied database, a LevelDB reopen and the catch-up
RECOVERY_TIMEOUT = 60.0  # seconds from free() to node 1 back at the others' height
STORAGE_REASON = "storage write failed"
FAILED_EVENT = '"event": "storage_write_failed"'
RETRY_FAILED_EVENT = '"event": "storage_retry_failed"'


@pytest.fixture
def net_on_small_disk() -> Iterator[tuple[TestNetwork, SmallDisk]]:
    """A running 4-validator network whose node 1 has its database on a small tmpfs."""
    denied = mount_denied()
    if denied is not None:
        pytest.skip(denied)
    with TestNetwork(4, name="disk-full") as net, SmallDisk() as disk:
        net.wait_committed(net.submit(range(4), 20))
        net.stop(VICTIM)
        home = net.nodes[VICTIM].home
        mount = disk.mount(net.dir / "node1-disk", DISK_BYTES)
        shutil.copytree(home / "data", mount / "data")
        # "disk low" below 1 MiB free, not the default 512 MiB (more than the whole disk)
        data_dir = f'"{mount / "data"}"'
        configure_home(home, {"node.data_dir": data_dir, "admin.health_min_free_disk_mib": "1"})
        net.restart(VICTIM)
        net.wait_committed(net.submit(range(4), 20))
        assert _health(net, VICTIM)[0] == 200
        yield net, disk
        if net.nodes[VICTIM].running:
            net.stop(VICTIM)  # before its disk goes away


def _health(net: TestNetwork, i: int) -> tuple[int, Any]:
    node = net.nodes[i]
    return net.http.request(node.admin, "GET", "/health", token=node.token)


def _storage_reasons(health: tuple[int, Any]) -> list[str]:
    status, body = health
    if status != 503 or not isinstance(body, dict):
        return []
    return [r for r in body.get("reasons", []) if r.startswith(STORAGE_REASON)]


def _log_count(net: TestNetwork, i: int, text: str) -> int:
    return net.nodes[i].log_path.read_text(encoding="utf-8", errors="replace").count(text)


def _fill_until_unhealthy(net: TestNetwork, disk: SmallDisk) -> int:
    """Fill node 1's disk and send traffic until node 1 meets it; its height then."""
    filled = disk.fill()
    net.log(f"filled node1's disk with {filled} bytes; {disk.free_bytes()} free")
    assert disk.free_bytes() == 0

    # a few small writes may still fit into the last, partly used page of its log
    def submit_and_check() -> list[str]:
        net.submit(OTHERS, 10)
        return _storage_reasons(_health(net, VICTIM))

    reasons = wait_until(
        "node1's /health to report the storage failure",
        submit_and_check,
        check=lambda: net.assert_running([VICTIM]),
    )
    net.log(f"node1 unhealthy: {reasons}")
    assert "(disk full)" in reasons[0] and "No space left on device" in reasons[0], reasons
    return net.height(VICTIM)


def test_a_full_data_directory_stops_writes_cleanly_and_recovers(
    net_on_small_disk: tuple[TestNetwork, SmallDisk],
) -> None:
    net, disk = net_on_small_disk
    stuck = _fill_until_unhealthy(net, disk)

    # the others go on without it; node 1 runs, writes nothing, stays unhealthy,
    # retries (in vain while the disk is full) and still serves what it stored
    net.wait_committed(net.submit(OTHERS, 60), nodes=OTHERS)
    ahead = net.wait_for_height(stuck + 3, nodes=OTHERS)
    wait_until(
        "node1 to retry in vain while its disk is full",
        lambda: _log_count(net, VICTIM, RETRY_FAILED_EVENT),
        check=lambda: net.assert_running([VICTIM]),
    )
    net.log(f"others at {ahead} while node1 stays at {stuck}")
    assert net.height(VICTIM) == stuck
    assert _storage_reasons(_health(net, VICTIM)), _health(net, VICTIM)
    assert net.block(VICTIM, stuck)["hash"] == net.block(0, stuck)["hash"]
    assert _log_count(net, VICTIM, FAILED_EVENT) == 1  # one line per episode
    assert disk.free_bytes() == 0

    # space returns: node 1 resumes by itself, catches up and commits again
    net.log(f"freed {disk.free()} bytes on node1's disk")
    target = max(net.heights(OTHERS).values())
    net.wait_for_height(target, nodes=[VICTIM], timeout=RECOVERY_TIMEOUT)
    wait_until(
        "node1's /health to answer 200",
        lambda: _health(net, VICTIM),
        lambda h: h[0] == 200,
        check=lambda: net.assert_running([VICTIM]),
    )
    net.wait_committed(net.submit(range(4), 20))
    height = net.wait_same_height()
    assert net.assert_same_chain() == height

    # a kill -9 after the episode: the database opens and holds the same chain
    net.kill(VICTIM)
    net.restart(VICTIM)
    net.wait_committed(net.submit(range(4), 20))
    height = net.wait_same_height(at_least=height + 1)
    assert net.assert_same_chain() == height
    assert _health(net, VICTIM)[0] == 200


def test_killed_while_its_disk_is_full_it_starts_with_its_chain_once_there_is_room(
    net_on_small_disk: tuple[TestNetwork, SmallDisk],
) -> None:
    """The kill -9 comes after a write failed (its LevelDB log may end in a partial
    record): LevelDB's recovery must read up to the last whole record, not refuse."""
    net, disk = net_on_small_disk
    stuck = _fill_until_unhealthy(net, disk)
    chain = net.block_hashes(VICTIM, stuck)
    net.kill(VICTIM)

    proc = run_hygeia("start", "--home", net.nodes[VICTIM].home, ok=False, timeout=TIMEOUT)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert "disk is full" in lines[0], lines

    net.log(f"freed {disk.free()} bytes on node1's disk")
    net.restart(VICTIM)
    assert net.height(VICTIM) >= stuck
    assert net.block_hashes(VICTIM, stuck) == chain
    net.wait_committed(net.submit(range(4), 20))
    height = net.wait_same_height(at_least=stuck + 1)
    assert net.assert_same_chain() == height
    assert _health(net, VICTIM)[0] == 200
