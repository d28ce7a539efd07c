"""``hygeia sim fuzz``: generated scenarios are deterministic, valid, owed every
verdict, survive a TOML round trip, and a modest batch of them passes."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import node.sim.fuzz as fuzz
from node.cli.main import main
from node.sim.engine import Simulation
from node.sim.scenario import (
    BEHAVIOURS,
    Fault,
    Latency,
    LinkRule,
    NetworkSpec,
    Scenario,
    load,
    parse,
)
from tests.sim.helpers import SCENARIOS, forking_kit

SEEDS = range(300)


def test_the_same_seed_gives_the_same_scenario():
    for seed in (0, 1, 17, 123_456):
        assert fuzz.generate(seed) == fuzz.generate(seed)
        assert fuzz.to_toml(fuzz.generate(seed)) == fuzz.to_toml(fuzz.generate(seed))
    assert len({fuzz.to_toml(fuzz.generate(s)) for s in range(50)}) == 50


def test_generated_scenarios_are_valid_and_owe_every_verdict():
    sizes: set[int] = set()
    behaviours: set[str] = set()
    kinds: set[str] = set()
    quiescent = lossy = 0
    for seed in SEEDS:
        s = fuzz.generate(seed)
        f = s.consensus_config().f
        assert s.replace() == s  # validates
        assert s.name == f"fuzz-{seed}"
        assert s.faulty_after_heal() <= f, seed
        assert all(x.end_ms is not None for x in s.faults if x.kind != "crash"), seed
        assert s.liveness_applicable(f)
        assert s.duration_ms >= s.last_fault_end() + s.liveness_bound()
        assert s.stop_at_height > 0
        sizes.add(s.n)
        behaviours.update(b.behaviour for b in s.byzantine)
        kinds.update(x.kind for x in s.faults)
        quiescent += bool(s.workload.stop_ms or s.workload.max_txs)
        lossy += s.network.loss_ppm > 0
    assert sizes >= set(range(4, 11)) | {13}
    assert kinds == {"crash", "partition", "drop"}
    assert len(behaviours) >= len(BEHAVIOURS) - 1
    assert 40 <= quiescent <= 200 and 40 <= lossy <= 200


def test_toml_round_trip_of_generated_scenarios():
    for seed in SEEDS:
        s = fuzz.generate(seed)
        assert parse(tomllib.loads(fuzz.to_toml(s))) == s, seed


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_toml_round_trip_of_shipped_scenarios(path: Path):
    s = load(path)
    assert parse(tomllib.loads(fuzz.to_toml(s))) == s


def test_toml_round_trip_of_links_drops_and_defaults():
    s = Scenario(
        name='odd "name" é',
        n=5,
        duration_ms=9_000,
        liveness_bound_ms=4_000,
        network=NetworkSpec(
            latency=Latency("normal", 30, 7),
            loss_ppm=1,
            links=(
                LinkRule(src=(0, 1), dst=(4,), latency=Latency("constant", 90, 0), loss_ppm=0),
                LinkRule(src=(2,), dst=(3,), duplicate_ppm=999_999, reorder_ppm=1_000_000),
            ),
        ),
        faults=(
            Fault("drop", 10, 20),
            Fault("drop", 30, 40, src=(1,), messages=("checkpoint", "sync_response")),
            Fault("partition", 50, 60, groups=((0,), (1, 2))),
            Fault("crash", 70, None, node=4),
        ),
    )
    assert parse(tomllib.loads(fuzz.to_toml(s))) == s.replace()


@pytest.mark.parametrize("chunk", range(4))
def test_a_batch_of_generated_scenarios_passes(chunk: int):
    """200 scenarios (seeds 0..199) in four chunks that pytest-xdist spreads."""
    failed = [o for o in fuzz.run_many(50 * chunk, 50) if not o.ok]
    assert not failed, "\n".join(
        f"seed {o.seed}: {o.first}\n    replay: hygeia sim fuzz --seed {o.seed} --count 1"
        for o in failed
    )


def test_run_many_in_processes_gives_what_one_process_gives():
    assert list(fuzz.run_many(500, 4, jobs=2)) == list(fuzz.run_many(500, 4))


def test_cli_fuzz_passes_and_writes_every_scenario_on_request(tmp_path):
    args = ["sim", "fuzz", "--seed", "7", "--count", "3", "--jobs", "1", "--out", str(tmp_path)]
    res = CliRunner().invoke(main, [*args, "--emit-all"])
    assert res.exit_code == 0, res.output
    assert "3 generated scenarios (seeds 7..9)" in res.output and "3 ok, 0 failed" in res.output
    for seed in (7, 8, 9):
        assert load(tmp_path / f"fuzz-{seed}.toml") == fuzz.generate(seed)


def test_cli_fuzz_prints_the_replay_of_each_failure_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.setattr(fuzz, "Simulation", lambda s, seed: Simulation(s, seed, forking_kit(1)))
    res = CliRunner().invoke(
        main, ["sim", "fuzz", "--seed", "3", "--count", "2", "--jobs", "1", "--out", str(tmp_path)]
    )
    assert res.exit_code == 1
    written = tmp_path / "fuzz-3.toml"
    assert "FAIL seed 3 (agreement" in res.output
    assert f"hygeia sim run {written} --seed 3" in res.output
    assert "0 ok, 2 failed" in res.output and "agreement 2" in res.output
    assert load(written) == fuzz.generate(3)


@pytest.mark.soak
def test_fuzz_soak():
    """10,000 generated scenarios (HYGEIA_FUZZ_COUNT overrides); `make soak` runs
    the same through the CLI instead."""
    count = int(os.environ.get("HYGEIA_FUZZ_COUNT", 10_000))
    failed = [o for o in fuzz.run_many(0, count, jobs=2) if not o.ok]
    assert not failed, "\n".join(f"seed {o.seed}: {o.first}" for o in failed[:20])


@pytest.mark.parametrize("seed", [4720, 6640])
def test_generated_scenarios_that_once_halted(seed: int):
    """Two generated clusters of n = 13 with 4 nodes crashed for good (exactly a
    quorum left) and 17-20 % loss: the commits of one height spread over
    several views and no view completed at most replicas, while fewer than f+1
    peers were ahead to sync from. They halted before 2 repairs of the replica
    (a stalled replica asks a single peer that is ahead for certified blocks; a
    peer answers votes for heights it delivered a pipeline ago with its COMMIT)."""
    outcome = fuzz.run_seed(seed)
    assert outcome.ok, f"seed {seed}: {outcome}; replay: hygeia sim fuzz --seed {seed} --count 1"
