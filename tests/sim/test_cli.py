"""``hygeia sim run`` and ``hygeia sim sweep`` end to end (click's test runner)."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

import node.cli.sim as sim_cli
from node.cli.main import main
from node.sim.engine import Simulation
from tests.sim.helpers import SCENARIO_DIR, forking_kit

HAPPY = str(SCENARIO_DIR / "happy-n4.toml")


def test_run_writes_a_byte_identical_report(tmp_path):
    runner = CliRunner()
    a, b = tmp_path / "a", tmp_path / "b"
    r1 = runner.invoke(main, ["sim", "run", HAPPY, "--seed", "5", "--out", str(a)])
    r2 = runner.invoke(main, ["sim", "run", HAPPY, "--seed", "5", "--out", str(b)])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output
    assert "agreement  ok" in r1.output and "wall time" in r1.output
    data = (a / "report.json").read_bytes()
    assert data == (b / "report.json").read_bytes()
    rep = json.loads(data)
    assert rep["seed"] == 5 and rep["scenario"] == "happy-n4" and rep["ok"]
    assert rep["blocks_committed"] >= 30
    assert {"p50", "p95", "p99"} <= set(rep["commit_latency_ms"])
    assert len(rep["nodes"]) == 4 and len({n["chain_hash"] for n in rep["nodes"]}) >= 1


def test_run_with_param_override(tmp_path):
    res = CliRunner().invoke(
        main,
        ["sim", "run", HAPPY, "--param", "n=7", "--param", "latency=20", "--out", str(tmp_path)],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "report.json").read_bytes())["n"] == 7


def test_violation_exits_non_zero_with_seed_and_replay_command(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sim_cli, "Simulation", lambda scenario, seed: Simulation(scenario, seed, forking_kit(2))
    )
    res = CliRunner().invoke(main, ["sim", "run", HAPPY, "--seed", "9", "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert "VIOLATED" in res.output
    assert "seed 9" in res.output
    assert f"hygeia sim run {HAPPY} --seed 9" in res.output
    assert not json.loads((tmp_path / "report.json").read_bytes())["ok"]


def test_bad_scenario_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nn = 4\nduration_ms = 100\nwat = 1\n')
    res = CliRunner().invoke(main, ["sim", "run", str(bad)])
    assert res.exit_code != 0 and "unknown key wat" in res.output


def test_sweep_writes_csv_and_plots(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "sim",
            "sweep",
            HAPPY,
            "--seeds",
            "2",
            "--param",
            "n=4,7",
            "--param",
            "loss=0,0.01",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 8
    assert {(r["n"], r["loss"]) for r in rows} == {
        ("4", "0"),
        ("4", "0.01"),
        ("7", "0"),
        ("7", "0.01"),
    }
    assert all(r["ok"] == "1" for r in rows)
    for png in ("latency_cdf.png", "throughput_vs_n.png", "messages_per_block_vs_n.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
