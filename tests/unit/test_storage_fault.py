"""The storage-fault state machine (``node.engine.storage_fault.StorageFault``), pure:
one episode per run of failures, the retry schedule (first wait, doubling, cap),
the ``/health`` reason and the operator's advice."""

from __future__ import annotations

import pytest

from node.engine.storage_fault import (
    HEALTH_PREFIX,
    RETRY_FIRST_MS,
    RETRY_MAX_MS,
    StorageFault,
    advice,
)

ERR = "cannot write to /d: IO error: /d/000014.log: No space left on device"


def test_healthy_until_a_write_fails() -> None:
    fault = StorageFault()
    assert not fault.failed
    assert fault.reason(5_000) is None
    assert not fault.due(10**9) and fault.until_due_ms(0) == 0
    with pytest.raises(RuntimeError):
        fault.retry_failed(ERR, disk_full=True, now_ms=0)
    with pytest.raises(RuntimeError):
        fault.recovered(0)


def test_only_the_first_failure_of_an_episode_begins_it() -> None:
    fault = StorageFault()
    assert fault.fail(ERR, disk_full=True, now_ms=1_000) is True
    assert fault.failed and fault.since_ms == 1_000
    assert fault.retry_at_ms == 1_000 + RETRY_FIRST_MS
    # a second part of the node meets the same disk: same episode, same schedule
    assert fault.fail("refused since an earlier write failed", disk_full=True, now_ms=1_400) is (
        False
    )
    assert fault.since_ms == 1_000 and fault.retry_at_ms == 1_000 + RETRY_FIRST_MS
    assert fault.error == "refused since an earlier write failed"


def test_retries_wait_twice_as_long_each_time_up_to_the_cap() -> None:
    fault = StorageFault(first_retry_ms=1_000, max_retry_ms=5_000)
    now = 0
    fault.fail(ERR, disk_full=True, now_ms=now)
    waits = []
    for attempt in range(1, 6):
        assert not fault.due(fault.retry_at_ms - 1)
        now = fault.retry_at_ms
        assert fault.due(now) and fault.until_due_ms(now) == 0
        assert fault.retry_failed(ERR, disk_full=True, now_ms=now) == attempt
        waits.append(fault.retry_at_ms - now)
        assert fault.until_due_ms(now) == waits[-1]
    assert waits == [2_000, 4_000, 5_000, 5_000, 5_000]
    assert StorageFault().max_retry_ms == RETRY_MAX_MS


def test_recovery_ends_the_episode_and_a_new_failure_begins_another() -> None:
    fault = StorageFault()
    fault.fail(ERR, disk_full=True, now_ms=2_000)
    fault.retry_failed(ERR, disk_full=True, now_ms=3_000)
    assert fault.recovered(9_500) == 7_500
    assert not fault.failed and fault.reason(9_500) is None and fault.attempts == 0
    assert fault.fail("EIO", disk_full=False, now_ms=20_000) is True
    assert fault.retry_at_ms == 20_000 + RETRY_FIRST_MS  # the schedule starts over


def test_health_reason_names_the_failure_its_age_and_the_next_retry() -> None:
    fault = StorageFault()
    fault.fail(ERR, disk_full=True, now_ms=0)
    fault.retry_failed(ERR, disk_full=True, now_ms=1_000)  # next in 2 s, at 3 000
    reason = fault.reason(2_500)
    assert reason == (
        f"{HEALTH_PREFIX} (disk full) 2 s ago: not voting or committing, retry 2 in 1 s; {ERR}"
    )
    fault.retry_failed("Input/output error", disk_full=False, now_ms=3_000)
    other = fault.reason(3_000)
    assert other is not None and other.startswith(f"{HEALTH_PREFIX} (I/O error) 3 s ago")
    assert other.endswith("Input/output error")


def test_advice_says_what_to_do_and_that_no_restart_is_needed() -> None:
    full = advice("/var/lib/hygeia/data", disk_full=True)
    assert "disk holding /var/lib/hygeia/data is full" in full
    assert "no restart is needed" in full and "no unwritten vote was sent" in full
    other = advice("/d", disk_full=False)
    assert "check the filesystem holding /d" in other and "full" not in other.split(".")[0]


def test_a_schedule_must_make_sense() -> None:
    with pytest.raises(ValueError):
        StorageFault(first_retry_ms=0)
    with pytest.raises(ValueError):
        StorageFault(first_retry_ms=2_000, max_retry_ms=1_000)
