"""Every scenario of configs/scenarios over many seeds (HYGEIA_SIM_SEEDS, default 100)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.sim.scenario import load
from tests.sim.helpers import SCENARIOS, check_seeds, seed_count


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
    ):
        assert want in names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_over_seeds(path: Path):
    check_seeds(path, load(path), range(seed_count(100)))


@pytest.mark.soak
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_soak(path: Path):
    check_seeds(path, load(path), range(seed_count(10_000)))
