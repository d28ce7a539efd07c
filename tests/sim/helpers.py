"""Shared helpers of the simulation tests: scenario files, seed counts, replay text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import msgspec

from consensus.actions import Action, Deliver
from node.cli.sim import replay_command
from node.sim import report
from node.sim.engine import Simulation
from node.sim.replicas import ReplicaKit, SimReplica, real_kit
from node.sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "configs" / "scenarios"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.toml"))


def seed_count(default: int) -> int:
    return int(os.environ.get("HYGEIA_SIM_SEEDS", default))


def replay(path: Path, seed: int) -> str:
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return replay_command(str(rel), seed)


def check_seeds(path: Path, scenario: Scenario, seeds: range) -> None:
    """Run ``scenario`` for every seed; fail listing each violating seed and its replay."""
    failures: list[str] = []
    for seed in seeds:
        rep = report.build(Simulation(scenario, seed).run())
        if not rep["ok"]:
            bad = {k: v["first"] for k, v in rep["invariants"].items() if not v["ok"]}
            failures.append(f"seed {seed}: {bad}\n    replay: {replay(path, seed)}")
    assert not failures, (
        f"{scenario.name}: {len(failures)} of {len(seeds)} seeds violate invariants:\n"
        + "\n".join(failures[:10])
    )


class ForkingReplica:
    """A real replica whose deliveries are tampered with: a different block at each height."""

    def __init__(self, inner: SimReplica) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def wrapped(*args: Any) -> list[Action]:
            return [self._fork(a) for a in attr(*args)]

        return wrapped

    @staticmethod
    def _fork(action: Action) -> Action:
        if not isinstance(action, Deliver):
            return action
        p = action.block.proposal
        other = msgspec.structs.replace(p, timestamp=p.timestamp + 1)
        return Deliver(msgspec.structs.replace(action.block, proposal=other))


def forking_kit(bad_node: int) -> ReplicaKit:
    kit = real_kit()

    def make(*args: Any) -> SimReplica:
        r = kit.factory(*args)
        return cast(SimReplica, ForkingReplica(r)) if args[1] == bad_node else r

    return ReplicaKit(make, kit.genesis_root)
