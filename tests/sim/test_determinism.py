"""Same scenario and seed give byte-identical reports; other seeds explore other runs."""

from __future__ import annotations

import pytest

from node.sim import report
from node.sim.engine import Simulation
from node.sim.scenario import load
from tests.sim.helpers import SCENARIO_DIR


def _bytes(name: str, seed: int) -> bytes:
    scenario = load(SCENARIO_DIR / f"{name}.toml")
    return report.dumps(report.build(Simulation(scenario, seed).run()))


@pytest.mark.parametrize(
    "name", ["happy-n7", "lossy-wan", "byzantine-crash-n7", "partition-1-3", "primary-crash"]
)
def test_same_seed_identical_report_bytes(name):
    assert _bytes(name, 11) == _bytes(name, 11)


def test_other_seeds_give_other_runs():
    reports = {_bytes("lossy-wan", seed) for seed in range(5)}
    assert len(reports) == 5


def test_report_has_no_floats():
    import json

    def walk(x: object) -> None:
        assert not isinstance(x, float), x
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads(_bytes("partition-2-2", 3)))


def test_report_does_not_depend_on_pythonhashseed():
    import os
    import subprocess
    import sys

    code = (
        "import sys; from node.sim import engine, report, scenario; "
        "s = scenario.load(sys.argv[1]); "
        "sys.stdout.buffer.write(report.dumps(report.build(engine.run(s, 5))))"
    )
    path = str(SCENARIO_DIR / "chaos-n7.toml")
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, path], env=env, capture_output=True, check=True
        )
        outs.add(proc.stdout)
    assert len(outs) == 1
