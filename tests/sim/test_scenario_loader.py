"""Scenario files: schema, defaults and the errors a bad file gets."""

from __future__ import annotations

import pytest

from node.sim.scenario import (
    Latency,
    ScenarioError,
    load,
    parse,
    parse_latency,
)
from node.sim.sweep import apply, parse_params
from tests.sim.helpers import SCENARIO_DIR, SCENARIOS

BASE = {"name": "t", "n": 4, "duration_ms": 1000}


def test_every_shipped_scenario_loads():
    for path in SCENARIOS:
        s = load(path)
        assert s.name == path.stem
        s.consensus_config()


def test_defaults_and_probabilities_in_ppm():
    s = parse(
        {
            **BASE,
            "network": {"loss": 0.05, "latency": {"dist": "uniform", "min_ms": 50, "max_ms": 300}},
        }
    )
    assert s.network.loss_ppm == 50_000
    assert s.network.latency == Latency("uniform", 50, 300)
    assert s.workload.mode == "open" and s.crypto == "keyed-hash"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**BASE, "bogus": 1}, "unknown key bogus"),
        ({**BASE, "duraton_ms": 1}, "unknown key duraton_ms .did you mean duration_ms"),
        ({**BASE, "network": {"loss": "x"}}, "network.loss must be a number in [0, 1], got 'x'"),
        ({**BASE, "faults": [{"kind": "x", "at_ms": 0}]}, "faults[0] kind must be one of crash"),
        ({"name": "t", "n": 4}, "missing key duration_ms"),
        ({**BASE, "network": {"loss": 1.5}}, "network.loss must be in [0, 1]"),
        ({**BASE, "network": {"latency": {"dist": "pareto"}}}, "latency dist"),
        ({**BASE, "network": {"latency": {"dist": "constant", "ms": 1, "x": 2}}}, "unknown key"),
        ({**BASE, "consensus": {"no_such_knob": 1}}, "[consensus]"),
        ({**BASE, "byzantine": [{"node": 9, "behaviour": "silent"}]}, "byzantine node 9"),
        ({**BASE, "byzantine": [{"node": 1, "behaviour": "evil"}]}, "behaviour must be"),
        (
            {**BASE, "faults": [{"kind": "crash", "node": 0, "at_ms": 100, "restart_ms": 900}]},
            "liveness deadline",
        ),
        ({**BASE, "n": True}, "must not be a boolean"),
    ],
)
def test_bad_scenarios_are_rejected(data, message):
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(data)


def test_faults_and_liveness_window():
    s = parse(
        {
            **BASE,
            "duration_ms": 20_000,
            "faults": [
                {"kind": "partition", "at_ms": 100, "heal_ms": 900, "groups": [[0, 1], [2, 3]]},
                {"kind": "crash", "node": 2, "at_ms": 50, "restart_ms": 1500},
            ],
            "byzantine": [{"node": 3, "behaviour": "silent"}],
        }
    )
    assert s.last_fault_end() == 1500
    assert s.faulty_after_heal() == 1


def test_latency_text_and_sweep_knobs():
    assert parse_latency("20") == Latency("constant", 20, 0)
    assert parse_latency("50-300") == Latency("uniform", 50, 300)
    assert parse_latency("100~20") == Latency("normal", 100, 20)
    with pytest.raises(ScenarioError):
        parse_latency("fast")
    s = load(SCENARIO_DIR / "happy-n4.toml")
    assert apply(s, "n", "7").consensus_config().n == 7
    assert apply(s, "loss", "0.01").network.loss_ppm == 10_000
    assert apply(s, "batch", "5").consensus_config().batch_max_count == 5
    assert parse_params(["n=4,7", "loss=0"]) == [("n", ["4", "7"]), ("loss", ["0"])]
    with pytest.raises(ScenarioError):
        parse_params(["speed=3"])


def test_lasting_partition_or_too_many_faulty_waive_liveness():
    lasting = parse(
        {**BASE, "faults": [{"kind": "partition", "at_ms": 0, "groups": [[0, 1], [2, 3]]}]}
    )
    assert not lasting.liveness_applicable(1)
    two_down = parse(
        {
            **BASE,
            "faults": [
                {"kind": "crash", "node": 0, "at_ms": 0},
                {"kind": "crash", "node": 1, "at_ms": 0},
            ],
        }
    )
    assert not two_down.liveness_applicable(1)
    assert parse(BASE).liveness_applicable(1)
