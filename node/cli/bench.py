"""``hygeia bench``: load a running network and report throughput, latency and memory.

One of ``COMMANDS`` that ``node/cli/main.py`` adds to ``hygeia``; also runnable
as ``python -m node.cli.bench``. The method is described in
``node/bench/load.py`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from node.api.remote import ClientError, request_json
from node.bench.load import run_load
from node.bench.progress import make_progress
from node.bench.workload import LoadConfig, NodeTarget, load_testnet
from node.cli import options
from node.core.keys import KeyFileError
from node.setup.testnet import TestnetError

__all__ = ["COMMANDS", "bench"]


@click.command(name="bench")
@click.option(
    "--testnet",
    "testnet_dir",
    type=options.EXISTING_DIRECTORY,
    help="A `hygeia testnet init` directory: API URLs, member keys, admin tokens, node homes.",
)
@options.api(
    "A node's client API (repeatable; instead of --testnet). Needs --key.",
    "apis",
    required=False,
    multiple=True,
    metavar="URL",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=options.EXISTING_FILE,
    help="A member key file to sign with (repeatable; with --testnet: every member_key.json).",
)
@click.option(
    "--mode",
    type=click.Choice(["open", "closed"]),
    default="closed",
    show_default=True,
    help="open: send at --rate whatever happens; closed: keep --concurrency txs uncommitted.",
)
@click.option("--rate", type=float, default=500.0, show_default=True, help="Open loop: tx/s.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Closed loop: transactions in flight (submitted, not yet committed).",
)
@click.option(
    "--duration", type=float, default=60.0, show_default=True, help="Measured window, seconds."
)
@click.option(
    "--warmup", type=float, default=5.0, show_default=True, help="Load before the window, s."
)
@click.option(
    "--drain",
    type=float,
    default=15.0,
    show_default=True,
    help="After the window, wait at most this long for its transactions to commit.",
)
@click.option(
    "--txs",
    type=click.IntRange(min=1),
    help="Transactions to pre-sign (default: enough for the rate, or 2,500/s closed).",
)
@click.option(
    "--poll-interval",
    type=float,
    default=0.02,
    show_default=True,
    help="Seconds between polls for the next block.",
)
@click.option("--out", "out", type=options.FILE, help="Also write JSON here.")
@click.option("--progress/--no-progress", default=True, help="Progress on stderr.")
def bench(
    testnet_dir: Path | None,
    apis: tuple[str, ...],
    keys: tuple[Path, ...],
    mode: str,
    rate: float,
    concurrency: int,
    duration: float,
    warmup: float,
    drain: float,
    txs: int | None,
    poll_interval: float,
    out: Path | None,
    progress: bool,
) -> None:
    """Drive a running network with pre-signed transactions; print a JSON report.

    Transactions go round-robin to the nodes; a transaction's latency is from
    its submission until the node that received it has it in a committed
    block. Peak RSS is read from /proc for nodes whose home is known (--testnet).
    """
    if (testnet_dir is None) == (not apis):
        raise click.UsageError("give either --testnet DIR or one or more --api URL")
    targets: list[NodeTarget]
    if testnet_dir is not None:
        try:
            chain_id, targets, key_files = load_testnet(testnet_dir)
        except (OSError, ValueError, KeyError, TestnetError) as exc:
            raise click.ClickException(f"{testnet_dir}: not a usable testnet ({exc})") from None
        key_paths = list(keys) or key_files
    else:
        targets = [NodeTarget(f"api{i}", a.rstrip("/")) for i, a in enumerate(apis)]
        key_paths = list(keys)
        try:
            chain_id = str(request_json("GET", targets[0].api + "/v1/info")["chain_id"])
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
    if not key_paths:
        raise click.UsageError("no member key to sign with: give --key FILE")
    for target in targets:  # fail before signing, not with a report full of errors
        try:
            info = request_json("GET", target.api + "/v1/info", timeout=5)
        except ClientError as exc:
            raise click.ClickException(f"{target.name}: {exc}") from None
        if info.get("chain_id") != chain_id:
            raise click.ClickException(
                f"{target.name} ({target.api}) is on chain {info.get('chain_id')!r}, "
                f"not {chain_id!r}"
            )
    try:
        cfg = LoadConfig(
            mode="open" if mode == "open" else "closed",
            rate=rate,
            concurrency=concurrency,
            duration_s=duration,
            warmup_s=warmup,
            drain_s=drain,
            poll_interval_s=poll_interval,
            txs=txs,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def say(msg: str) -> None:
        if progress:
            click.echo(msg, err=True)

    try:
        report = run_load(
            cfg,
            targets,
            key_paths,
            chain_id,
            progress=make_progress(progress),
            log=say,
        )
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)


COMMANDS: tuple[click.Command, ...] = (bench,)

if __name__ == "__main__":
    bench()
