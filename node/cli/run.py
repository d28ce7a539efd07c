"""``hygeia start`` (one node in the foreground) and ``hygeia testnet start``.

``start`` loads the configuration (flags > environment > file > defaults),
configures logging, logs the effective configuration with secrets redacted,
checks the home, and runs the daemon until SIGTERM or SIGINT; then it stops
accepting requests, finishes the block being written, closes LevelDB and
exits 0 within ``shutdown.timeout_ms``. SIGHUP reopens the log file.

``testnet start`` runs every node of a testnet directory as its own process
(``python -m node.cli start --home ...``), prefixes their output with the
node name, and stops them all cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import click
import structlog

from node.cli import options
from node.cli.errors import user_errors
from node.cli.node import testnet
from node.daemon import Node
from node.exchange.store import DocumentStoreError
from node.ops import logs, notify
from node.setup.config import ConfigError, load_config, parse_overrides
from node.setup.home import HomeError, check_home, read_admin_token
from node.setup.testnet import read_testnet
from storage.errors import StorageError


async def _run_node(node: Node, timeout_ms: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, logs.reopen)
    log = structlog.get_logger("hygeia.node")
    try:
        await node.start()
    except StorageError as exc:
        log.error("cannot open the database", error=str(exc))
        await _stop_quietly(node, timeout_ms)
        return 1
    except DocumentStoreError as exc:
        log.error("cannot open the document store", error=str(exc))
        await _stop_quietly(node, timeout_ms)
        return 1
    except OSError as exc:
        log.error("cannot start", error=str(exc))
        await _stop_quietly(node, timeout_ms)
        return 1
    # what start-up allocated (modules, config, genesis, the replica's restored
    # state) lives as long as the process: keep it out of every later full
    # garbage collection, whose pauses stall consensus on a busy node
    gc.freeze()
    notify.ready(f"serving at height {node.applier.tip.height}")
    waiter = asyncio.create_task(stop.wait())
    fatal = asyncio.create_task(_watch_fatal(node))
    await asyncio.wait({waiter, fatal}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    fatal.cancel()
    log.info("shutting down")
    notify.stopping("shutting down")
    try:
        await asyncio.wait_for(node.stop(), timeout_ms / 1000)
    except TimeoutError:
        log.error("shutdown timed out", timeout_ms=timeout_ms)
        return 1
    return 1 if node.failed is not None else 0


async def _watch_fatal(node: Node) -> None:
    while node.failed is None:
        await asyncio.sleep(0.2)


async def _stop_quietly(node: Node, timeout_ms: int) -> None:
    # a partial start: close what was opened; the first error was already reported
    with contextlib.suppress(Exception):
        await asyncio.wait_for(node.stop(), timeout_ms / 1000)


@click.command(name="start")
@options.home()
@options.settings()
@click.option("--p2p-listen", help="Override [p2p] listen (host:port).")
@click.option("--api-listen", help="Override [api] listen (host:port).")
@click.option("--admin-listen", help="Override [admin] listen (host:port).")
@click.option("--log-level", help="Override [log] level.")
@user_errors
def start(
    home: Path,
    settings: tuple[str, ...],
    p2p_listen: str | None,
    api_listen: str | None,
    admin_listen: str | None,
    log_level: str | None,
) -> None:
    """Run the node daemon in the foreground."""
    overrides: dict[str, Any] = dict(parse_overrides(settings))
    for key, value in (
        ("p2p.listen", p2p_listen),
        ("api.listen", api_listen),
        ("admin.listen", admin_listen),
        ("log.level", log_level),
    ):
        if value is not None:
            overrides[key] = value
    cfg = load_config(home, overrides=overrides)
    logs.configure_from_config(cfg)
    log = structlog.get_logger("hygeia.node")
    report = check_home(cfg)
    log.info("effective configuration", config=cfg.effective_config_redacted())
    for warning in report.warnings:
        log.warning("configuration warning", warning=warning)
    try:
        node = Node(cfg)
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc)) from None
    code = asyncio.run(_run_node(node, cfg.shutdown.timeout_ms))
    sys.exit(code)


# ---------------------------------------------------------------- testnet
def _pump(prefix: str, stream: IO[bytes], out: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        out.write(f"{prefix} | {raw.decode('utf-8', 'replace')}")
        out.flush()


def launch_node(home: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start one ``hygeia start`` process (its own session, stdout+stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "start", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def print_testnet_banner(meta: dict[str, Any]) -> None:
    click.echo(f"testnet {meta['chain_id']}: {len(meta['nodes'])} validators")
    for n in meta["nodes"]:
        click.echo(
            f"  {n['name']:<8} api {n['api']}  admin {n['admin']}  (token: {n['admin_token_file']})"
        )
        click.echo(
            f"           dashboard {n['admin']}/ui#token={read_admin_token(n['admin_token_file'])}"
        )
    first = meta["nodes"][0]
    member_key = Path(first["home"]) / "member_key.json"
    click.echo("")
    click.echo("submit a first transaction (anchor a document's SHA-256):")
    api, admin, token = first["api"], first["admin"], first["admin_token_file"]
    hygeia = ".venv/bin/hygeia"
    click.echo(f"  {hygeia} client anchor --api {api} --key {member_key} --file README.md --wait")
    click.echo(f"  {hygeia} client tx <HASH> --api {api}")
    click.echo(f'  curl -s -H "Authorization: Bearer $(cat {token})" {admin}/status')
    click.echo("Ctrl-C stops every node cleanly.\n")


@testnet.command(name="start")
@click.option(
    "--dir",
    "directory",
    type=options.EXISTING_DIRECTORY,
    required=True,
    help="A directory made by `hygeia testnet init`.",
)
@user_errors
def testnet_start(directory: Path) -> None:
    """Run every node of a local testnet as its own process."""
    meta = read_testnet(directory, need=("name", "home", "api", "admin", "admin_token_file"))
    print_testnet_banner(meta)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    pumps: list[threading.Thread] = []
    for n in meta["nodes"]:
        proc = launch_node(Path(n["home"]))
        assert proc.stdout is not None
        t = threading.Thread(target=_pump, args=(n["name"], proc.stdout, sys.stdout), daemon=True)
        t.start()
        procs.append((n["name"], proc))
        pumps.append(t)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    exited: dict[str, int] = {}
    while not stop.is_set() and len(exited) < len(procs):
        for name, proc in procs:
            code = proc.poll()
            if code is not None and name not in exited:
                exited[name] = code
                click.echo(f"{name} exited with status {code}", err=True)
        stop.wait(0.5)
    click.echo("stopping all nodes ...", err=True)
    for _name, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    status = 0
    for name, proc in procs:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code != 0 and name not in exited:
            status = 1
            click.echo(f"{name} exited with status {code}", err=True)
    for t in pumps:
        t.join(timeout=2)
    sys.exit(status)


COMMANDS: tuple[click.Command, ...] = (start,)  # `testnet start` joins node.py's group
