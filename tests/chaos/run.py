"""``python -m tests.chaos.run``: chaos runs from the command line (``make chaos``).

    python -m tests.chaos.run --minutes 30 --nodes 4 7            # a random seed, printed
    python -m tests.chaos.run --minutes 30 --nodes 4 --seed 1234  # repeat a run
    python -m tests.chaos.run --ci                                # the fixed CI schedule
    python -m tests.chaos.run --schedule out/chaos/4-1234/schedule.txt

One run per node count, one after the other, each with its schedule from the
seed (``tests.chaos.schedule.generate``: every fault kind, windows of 3 to 10
seconds with quiet gaps). Output in ``out/chaos/<nodes>-<seed>/``
(``tests/chaos/runner.py``). Exit status 1 if any run found a violation.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from pathlib import Path

from tests.chaos.disk import mount_denied
from tests.chaos.runner import ChaosFailure, RunConfig, run_chaos
from tests.chaos.schedule import ALL_KINDS, MIN_NODES, ci_schedule, generate, parse_schedule

OUT = Path("out/chaos")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of each run")
    parser.add_argument("--nodes", type=int, nargs="+", default=[4, 7], help="validators")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--kinds", default=",".join(ALL_KINDS), help="fault kinds to draw")
    parser.add_argument("--ci", action="store_true", help="the fixed CI schedule instead")
    parser.add_argument("--schedule", type=Path, help="replay this schedule text")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=4.0, help="submissions/s per client")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: the nodes stop, the disks unmount
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    print(f"chaos seed: {seed} (repeat with --seed {seed})", flush=True)

    denied = mount_denied()
    if denied:
        print(f"disk-full faults left out: {denied}", flush=True)
    failed: list[str] = []
    plans = []
    if args.schedule is not None:
        schedule = parse_schedule(args.schedule.read_text(encoding="utf-8"))
        plans.append((f"{schedule.nodes}-replay-{schedule.seed}", schedule))
    else:
        for n in args.nodes:
            if args.ci:
                plans.append((f"{n}-ci", ci_schedule(n, skip=["disk-full"] if denied else [])))
                continue
            kinds = [
                k
                for k in args.kinds.split(",")
                if n >= MIN_NODES.get(k, 2) and not (denied and k == "disk-full")
            ]
            plans.append((f"{n}-{seed}", generate(seed, args.minutes * 60, n, kinds)))
    for name, schedule in plans:
        try:
            report = run_chaos(
                RunConfig(
                    schedule, args.out / name, seed=seed, clients=args.clients, rate=args.rate
                )
            )
            print(f"{name}: ok, {report.data['txs']}", flush=True)
        except ChaosFailure as exc:
            print(f"{name}: FAILED (seed {seed})\n{exc}", flush=True)
            failed.append(name)
    if failed:
        print(f"chaos: violations in {', '.join(failed)}; seed {seed}", file=sys.stderr)
        return 1
    print(f"chaos: every run passed (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
