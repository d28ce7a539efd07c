"""Every scenario of configs/scenarios over many seeds (HYGEIA_SIM_SEEDS, default 100;
1,000 in the soak), and the scenario features they rely on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from node.sim import report
from node.sim.engine import Simulation
from node.sim.scenario import Fault, ScenarioError, load, parse
from tests.sim.helpers import SCENARIO_DIR, SCENARIOS, check_seeds, seed_count


def test_scenarios_exist():
    names = {p.stem for p in SCENARIOS}
    for want in (
        "happy-n4",
        "happy-n7",
        "happy-n31",
        "primary-crash",
        "equivocating-primary",
        "partition-2-2",
        "partition-1-3",
        "lossy-wan",
        "byzantine-crash-n7",
        # issue 10: clusters that halted for good with the replica before 9eaf435
        "halt-lost-checkpoints",
        "halt-view-change-deadlock",
        "halt-missed-commits",
        "halt-restart-after-load",
    ):
        assert want in names


def test_the_halt_scenarios_owe_what_they_check():
    for stem, verdict in (
        ("halt-lost-checkpoints", "termination"),
        ("halt-view-change-deadlock", "termination"),
        ("halt-missed-commits", "convergence"),
        ("halt-restart-after-load", "convergence"),
    ):
        scenario = load(SCENARIO_DIR / f"{stem}.toml")
        rep = report.build(Simulation(scenario, 0).run())
        assert not rep["invariants"][verdict].get("note"), (stem, rep["invariants"][verdict])


def test_drop_faults_parse_and_validate():
    base = 'name = "d"\nn = 4\nduration_ms = 20000\n'
    s = parse(
        tomllib.loads(
            base + '[[faults]]\nkind = "drop"\nat_ms = 10\nheal_ms = 20\nfrom = [0]\n'
            'to = [1, 2]\nmessages = ["checkpoint", "view_change"]\n'
            '[[faults]]\nkind = "drop"\nat_ms = 5\n'
        )
    )
    assert s.faults[0] == Fault(
        "drop", 10, 20, src=(0,), dst=(1, 2), messages=("checkpoint", "view_change")
    )
    assert s.faults[1] == Fault("drop", 5, None)
    assert s.last_fault_end() == 20
    assert not s.liveness_applicable(1)  # a drop that never heals, like a partition
    for bad, why in (
        ('messages = ["nonsense"]', "drop message 'nonsense'"),
        ("from = [4]", "drop node 4 outside"),
        ("messages = [1]", "list of message names"),
        ("groups = [[0]]", "unknown key"),
    ):
        text = base + f'[[faults]]\nkind = "drop"\nat_ms = 1\nheal_ms = 2\n{bad}\n'
        with pytest.raises(ScenarioError, match=why):
            parse(tomllib.loads(text))


def test_the_default_liveness_bound_is_a_few_view_change_timeouts():
    s = parse(tomllib.loads('name = "b"\nn = 4\nduration_ms = 100\n'))
    assert s.liveness_bound_ms == 0
    assert s.liveness_bound() == 4 * 2_000 + 2_000 + 2 * 200
    s = parse(
        tomllib.loads(
            'name = "b"\nn = 4\nduration_ms = 100\n[consensus]\n'
            "view_change_timeout_ms = 500\nstatus_interval_ms = 300\n"
        )
    )
    assert s.liveness_bound() == 4 * 500 + 300 + 400
    assert s.replace(liveness_bound_ms=1234).liveness_bound() == 1234


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_over_seeds(path: Path):
    check_seeds(path, load(path), range(seed_count(100)))


@pytest.mark.soak
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_soak(path: Path):
    check_seeds(path, load(path), range(seed_count(1_000)))
