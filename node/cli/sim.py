"""``hygeia sim``: run one deterministic simulation, sweep seeds and parameters, or fuzz."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from node.sim import fuzz, report, sweep
from node.sim.engine import Simulation
from node.sim.scenario import Scenario, ScenarioError, load

SCENARIO_FILE = click.Path(exists=True, dir_okay=False)  # paths as str: scenarios name them so
OUT_DIR = click.Path(file_okay=False)


def _load(path: str, params: tuple[str, ...]) -> Scenario:
    try:
        scenario = load(path)
        for name, values in sweep.parse_params(params):
            if len(values) != 1:
                raise ScenarioError(f"--param {name} takes one value in `sim run`")
            scenario = sweep.apply(scenario, name, values[0])
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    return scenario


def replay_command(path: str, seed: int, params: tuple[str, ...] = ()) -> str:
    words = ["hygeia", "sim", "run", path, "--seed", str(seed)]
    for p in params:
        words += ["--param", p]
    return shlex.join(words)


@click.group(name="sim")
def sim() -> None:
    """Deterministic cluster simulations of the real replica."""


@sim.command(name="run")
@click.argument("scenario_file", type=SCENARIO_FILE)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's RNG.")
@click.option(
    "--out",
    "out_dir",
    type=OUT_DIR,
    default=None,
    help="Directory for report.json [default: out/sim-<scenario name>].",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Override one knob, NAME=VALUE (n, loss, latency, batch), e.g. to replay a sweep.",
)
def run_cmd(scenario_file: str, seed: int, out_dir: str | None, params: tuple[str, ...]) -> None:
    """Run SCENARIO_FILE once and write DIR/report.json (byte-identical per seed)."""
    scenario = _load(scenario_file, params)
    out = Path(out_dir or f"out/sim-{scenario.name}")
    started = time.perf_counter()
    sim_run = Simulation(scenario, seed).run()
    wall = time.perf_counter() - started
    rep = report.build(sim_run)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(report.dumps(rep))
    click.echo(report.summary(rep))
    click.echo(f"  wall time {wall:.3f} s  report {out / 'report.json'}")
    if not rep["ok"]:
        click.echo(f"invariant violated with seed {seed}; replay with:", err=True)
        click.echo(f"  {replay_command(scenario_file, seed, params)}", err=True)
        raise SystemExit(1)


@sim.command(name="sweep")
@click.argument("scenario_file", type=SCENARIO_FILE)
@click.option("--seeds", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--first-seed", type=int, default=0, show_default=True)
@click.option(
    "--param",
    "params",
    multiple=True,
    help="NAME=v1,v2,... with NAME one of n, loss, latency, batch; repeat for a grid.",
)
@click.option(
    "--out",
    "out_dir",
    type=OUT_DIR,
    default=None,
    help="Directory for sweep.csv and the plots [default: out/sweep-<scenario name>].",
)
def sweep_cmd(
    scenario_file: str, seeds: int, first_seed: int, params: tuple[str, ...], out_dir: str | None
) -> None:
    """Run SCENARIO_FILE over many seeds and knob values; write a CSV and PNG plots."""
    base = _load(scenario_file, ())
    try:
        grid = sweep.parse_params(params)
        # build every combination up front so that a bad value fails before any run
        list(sweep.combos(base, grid))
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    vary = [name for name, _ in grid]
    out = Path(out_dir or f"out/sweep-{base.name}")
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []

    def progress(combo: sweep.Combo, seed: int, rep: dict[str, object]) -> None:
        if not rep["ok"]:
            knobs = tuple(f"{k}={combo.knobs[k]}" for k in vary)
            failures.append(replay_command(scenario_file, seed, knobs))

    started = time.perf_counter()
    done = sweep.run_sweep(base, grid, seeds, first_seed, progress=progress)
    wall = time.perf_counter() - started
    sweep.write_csv(out / "sweep.csv", done)
    from node.sim import plots  # matplotlib is slow to import: only when drawing

    pngs = plots.draw_all(out, done, vary)
    runs = sum(len(c.rows) for c in done)
    click.echo(f"{runs} runs of {base.name} in {wall:.1f} s wall; {len(failures)} failed")
    for combo in done:
        ok = sum(r["ok"] for r in combo.rows)
        tps = sorted(float(r["throughput_tps"]) for r in combo.rows)
        click.echo(
            f"  {combo.label(vary):<32} ok {ok}/{len(combo.rows)}  "
            f"median throughput {tps[len(tps) // 2]:.1f} tx/s"
        )
    click.echo(f"  wrote {out / 'sweep.csv'} and {', '.join(p.name for p in pngs)}")
    if failures:
        click.echo("invariant violations; replay with:", err=True)
        for cmd in failures[:20]:
            click.echo(f"  {cmd}", err=True)
        raise SystemExit(1)


@sim.command(name="fuzz")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first scenario.")
@click.option("--count", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes."
)
@click.option(
    "--out",
    "out_dir",
    type=OUT_DIR,
    default="out/sim-fuzz",
    show_default=True,
    help="Where the TOML of every failing scenario is written (fuzz-<seed>.toml).",
)
@click.option("--emit-all", is_flag=True, help="Write every generated scenario, not only failures.")
def fuzz_cmd(seed: int, count: int, jobs: int, out_dir: str, emit_all: bool) -> None:
    """Generate and run COUNT random scenarios from seeds SEED..SEED+COUNT-1.

    Scenario i is generated from, and run with, seed SEED+i. Every failure is
    written to OUT/fuzz-<seed>.toml and printed with the command that replays it.
    """
    out = Path(out_dir)
    started = time.perf_counter()
    failed: list[fuzz.Outcome] = []
    by_invariant: dict[str, int] = {}
    for outcome in fuzz.run_many(seed, count, jobs):
        if emit_all or not outcome.ok:
            path = fuzz.write(fuzz.generate(outcome.seed), out)
        if outcome.ok:
            continue
        failed.append(outcome)
        for name in outcome.violated:
            by_invariant[name] = by_invariant.get(name, 0) + 1
        click.echo(
            f"FAIL seed {outcome.seed} ({', '.join(outcome.violated)}): "
            f"{replay_command(str(path), outcome.seed)}\n    first: {outcome.first}"
        )
    wall = time.perf_counter() - started
    summary = ", ".join(f"{k} {v}" for k, v in sorted(by_invariant.items()))
    click.echo(
        f"{count} generated scenarios (seeds {seed}..{seed + count - 1}) in {wall:.1f} s wall: "
        f"{count - len(failed)} ok, {len(failed)} failed" + (f" ({summary})" if summary else "")
    )
    if emit_all:
        click.echo(f"  wrote {count} scenarios to {out}")
    if failed:
        raise SystemExit(1)


COMMANDS: tuple[click.Command, ...] = (sim,)
