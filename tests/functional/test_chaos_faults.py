"""Functional (``make chaos``): each fault kind alone, a focused run with a fixed schedule.

For every kind of ``tests.chaos.schedule.ALL_KINDS``, the fault of the CI
schedule (``ci_faults``) plays once for eight seconds, after three quiet
seconds and before ten, on four real nodes with the workload running
(``tests.chaos.runner``); the checker must find nothing. A failure names the
kind, so a problem is traced to one fault; the output of each run is in
``out/chaos/focused-<kind>/``. About 40 seconds each: marked ``chaos``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.disk import mount_denied
from tests.chaos.runner import RunConfig, run_chaos
from tests.chaos.schedule import ci_faults, fixed_schedule

OUT = Path(__file__).resolve().parents[2] / "out" / "chaos"
FAULTS = {fault.kind: fault for fault in ci_faults(4)}

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("kind", list(FAULTS))
def test_one_fault_kind_alone(kind: str) -> None:
    if kind == "disk-full" and (denied := mount_denied()):
        pytest.skip(denied)
    schedule = fixed_schedule([FAULTS[kind]], 4, fault_s=8.0, gap_s=3.0, tail_s=10.0)
    report = run_chaos(RunConfig(schedule, OUT / f"focused-{kind}", seed=0))
    assert report.data["faults_injected"] == {kind: 1}
    assert report.violations == []
    assert report.data["txs"]["accepted_lost_otherwise"] == 0
