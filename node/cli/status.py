"""``hygeia status``: a node's status as a table, one row per node of a testnet, or a wait
(with a progress bar on a terminal) until a node has caught up with its peers.

Each node is asked ``GET /status``, ``GET /health`` and ``GET /peers`` on its admin API
with a short timeout; the nodes of a testnet are asked concurrently, and one that does
not answer is a ``down`` row, not a failure of the command. On a terminal the tables
are drawn with rich; otherwise they are plain aligned columns (stable for grep and
scripts). ``--json`` prints the same facts as JSON.

``--wait-synced`` polls one node until it has caught up: a node still restoring a
snapshot (the ``state_sync`` object of ``/status``, ``hygeia init --join``) has not,
whatever its height; a node that has no such field (older) or has it null is judged
by its height against its peers' alone (``sync_state``).

Exit status: 0 when every node asked answered and is healthy, 1 otherwise; with
``--wait-synced``, 0 once the node has caught up and 1 at the timeout; 2 for wrong
options.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import click
from click.core import ParameterSource

from node.api.remote import ClientError, request_json
from node.bench.progress import Every, TaskBar, is_terminal
from node.cli import options
from node.cli.clients.common import echo
from node.cli.ops import local_url
from node.setup.config import ConfigError, load_config
from node.setup.home import HomeError, read_admin_token
from node.setup.testnet import TESTNET_FILE, TestnetError, read_testnet

__all__ = [
    "COMMANDS",
    "TESTNET_HEADER",
    "Report",
    "StateSyncProgress",
    "SyncState",
    "Target",
    "fetch",
    "fetch_all",
    "home_target",
    "node_rows",
    "plain_table",
    "state_sync_progress",
    "status",
    "sync_state",
    "testnet_rows",
    "testnet_targets",
    "wait_until_synced",
]

REQUEST_TIMEOUT = 5.0  # seconds per HTTP request
POLL_S = 0.5  # --wait-synced: seconds between polls
PLAIN_EVERY_S = 5.0  # --wait-synced off a terminal: seconds between progress lines
SYNC_SLACK: Final = 2  # caught up: within this many heights of the best peer
HASH_CHARS: Final = 16
MAX_WORKERS: Final = 32
TESTNET_HEADER: Final = (
    "name",
    "height",
    "epoch",
    "role",
    "view",
    "primary",
    "peers",
    "syncing",
    "mempool",
    "health",
)


@dataclass(frozen=True)
class Target:
    """A node to ask: a name for messages, its admin API URL and bearer token.

    ``token`` is None when it could not be read; ``error`` then says why."""

    name: str
    admin: str
    token: str | None
    error: str | None = None


@dataclass
class Report:
    """What one node answered; ``status`` is None when it did not (``error`` says why)."""

    name: str
    admin: str
    status: dict[str, Any] | None = None
    healthy: bool = False
    reasons: list[str] = field(default_factory=list)
    peers: list[dict[str, Any]] | None = None  # GET /peers, None if it failed
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.status is not None

    def to_json(self) -> dict[str, Any]:
        """The ``/status`` fields plus ``admin``, ``up``, ``error``, ``health`` and
        ``peers_known`` (how many peers the node knows, linked or not)."""
        doc: dict[str, Any] = dict(self.status or {})
        doc.setdefault("name", self.name)
        doc["admin"] = self.admin
        doc["up"] = self.up
        doc["error"] = self.error
        doc["health"] = {"ok": self.healthy, "reasons": self.reasons} if self.up else None
        doc["peers_known"] = len(self.peers) if self.peers is not None else None
        return doc


# ------------------------------------------------------------------ asking the nodes
def _health(base: str, token: str, timeout: float) -> tuple[bool, list[str]]:
    """``GET /health``: 200 is healthy; a 503 answer carries the reasons."""
    url = f"{base}/health"
    try:
        doc = request_json("GET", url, token=token, timeout=timeout, answer_statuses=(503,))
    except ValueError:
        raise ClientError(f"{url}: the answer is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        raise ClientError(f'{url}: the answer has no boolean "ok"')
    reasons = [str(r) for r in doc.get("reasons") or []]
    return doc["ok"], reasons


def _get_object(url: str, token: str, timeout: float) -> dict[str, Any]:
    try:
        doc = request_json("GET", url, token=token, timeout=timeout)
    except ValueError:
        raise ClientError(f"{url}: the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ClientError(f"{url}: the answer is not a JSON object")
    return doc


def fetch(target: Target, timeout: float = REQUEST_TIMEOUT) -> Report:
    """Ask one node; never raises for a node that is down or answers nonsense."""
    base = target.admin.rstrip("/")
    report = Report(target.name, base)
    if target.token is None:
        report.error = target.error or "no admin token"
        return report
    try:
        st = _get_object(f"{base}/status", target.token, timeout)
        report.healthy, report.reasons = _health(base, target.token, timeout)
    except ClientError as exc:
        report.error = str(exc)
        return report
    report.status = st
    if isinstance(st.get("name"), str):
        report.name = st["name"]
    with contextlib.suppress(ClientError):
        peers = _get_object(f"{base}/peers", target.token, timeout).get("peers")
        if isinstance(peers, list):
            report.peers = [p for p in peers if isinstance(p, dict)]
    return report


def fetch_all(targets: Sequence[Target], timeout: float = REQUEST_TIMEOUT) -> list[Report]:
    """Ask every node at once; the reports in the order of ``targets``."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(targets))) as pool:
        return list(pool.map(lambda t: fetch(t, timeout), targets))


# ------------------------------------------------------------------ where the nodes are
def home_target(home: Path, warn: Callable[[str], None] | None = None) -> Target:
    """The node of a local home: admin address from its config, token from its file."""
    try:
        cfg = load_config(home)
        token = read_admin_token(cfg.admin_token_path, on_warning=warn)
    except (ConfigError, HomeError) as exc:
        raise click.ClickException(str(exc)) from None
    return Target(cfg.node.name, local_url(cfg.admin.listen), token)


def testnet_targets(path: Path) -> list[Target]:
    """Every node of a testnet directory (or of its ``testnet.json`` given directly).

    A node whose token file cannot be read is a target with that error (its row
    says so); a missing or malformed ``testnet.json`` is a ``ClickException``."""
    try:
        nodes = read_testnet(path, need=("name", "admin", "admin_token_file"))["nodes"]
    except TestnetError as exc:
        raise click.ClickException(str(exc)) from None
    targets = []
    for entry in nodes:
        try:
            token = read_admin_token(entry["admin_token_file"])
        except HomeError as exc:
            targets.append(Target(entry["name"], entry["admin"], None, str(exc)))
        else:
            targets.append(Target(entry["name"], entry["admin"], token))
    return targets


# ------------------------------------------------------------------ what the rows say
def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _syncing(st: dict[str, Any]) -> str:
    restore = state_sync_progress(st)
    if restore is not None and not restore.done:
        return restore.describe()
    if not st.get("syncing"):
        return "no"
    sync = st.get("sync") or {}
    local = sync.get("local_height", st.get("height"))
    target = max(sync.get("target_height") or 0, sync.get("best_peer_height") or 0)
    return f"syncing {local}/{target}"


def _peers(report: Report) -> str:
    assert report.status is not None
    linked = _text(report.status.get("peers"))
    return linked if report.peers is None else f"{linked}/{len(report.peers)}"


def _health_text(report: Report) -> str:
    if not report.up:
        return f"down: {report.error}"
    return "ok" if report.healthy else "; ".join(report.reasons) or "unhealthy"


def _primary(st: dict[str, Any]) -> str:
    primary = st.get("primary")
    if primary is not None and primary == st.get("validator_index"):
        return f"{primary} (this node)"
    return _text(primary)


def _validator(st: dict[str, Any]) -> str:
    index, count = st.get("validator_index"), st.get("validators")
    if index is None:
        return f"no (observer of {_text(count)} validators)"
    return f"yes (index {index} of {_text(count)})"


def node_rows(report: Report) -> list[tuple[str, str]]:
    """The (field, value) rows of one node that answered."""
    st = report.status
    assert st is not None
    block_hash = st.get("last_block_hash")
    return [
        ("name", _text(st.get("name", report.name))),
        ("node id", _text(st.get("node_id"))),
        ("chain", _text(st.get("chain_id"))),
        ("health", _health_text(report)),
        ("height", _text(st.get("height"))),
        ("epoch", _text(st.get("epoch"))),
        ("role", _text(st.get("role"))),
        ("last block", block_hash[:HASH_CHARS] if isinstance(block_hash, str) else "-"),
        ("view", _text(st.get("view"))),
        ("primary", _primary(st)),
        ("validator", _validator(st)),
        ("peers", _peers(report)),
        ("syncing", _syncing(st)),
        ("mempool", _text(st.get("mempool_size"))),
        ("version", _text(st.get("version"))),
    ]


def testnet_rows(reports: Sequence[Report]) -> list[tuple[str, ...]]:
    """One row per node under ``TESTNET_HEADER``; a node that did not answer is ``down``."""
    rows: list[tuple[str, ...]] = []
    for r in reports:
        st = r.status
        if st is None:
            rows.append((r.name, "down", "-", "-", "-", "-", "-", "-", "-", _health_text(r)))
            continue
        rows.append(
            (
                r.name,
                _text(st.get("height")),
                _text(st.get("epoch")),
                _text(st.get("role")),
                _text(st.get("view")),
                _text(st.get("primary")),
                _peers(r),
                _syncing(st),
                _text(st.get("mempool_size")),
                _health_text(r),
            )
        )
    return rows


def plain_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart (no trailing blanks)."""
    lines = ([tuple(header)] if header else []) + [tuple(r) for r in rows]
    if not lines:
        return []
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]


def _print_table(
    header: Sequence[str] | None, rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """A rich table when stdout is a terminal, ``plain_table`` otherwise. Without a
    header the rows are (field, value) pairs; the health cell is green when "ok"."""
    if not is_terminal(sys.stdout):
        for line in plain_table(header, rows):
            click.echo(line)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if header is None:  # (field, value) pairs: no frame, so a 64-hex node id fits 80 columns
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
    else:
        table = Table(box=box.HEAVY_HEAD)
        for name in header:
            table.add_column(name, overflow="fold")
    table.title, table.title_justify = title, "left"
    for row in rows:
        cells = [Text(c) for c in row]  # Text: a "[...]" in an error message is no markup
        if header is None:
            health = cells[1] if row[0] == "health" else None
        else:
            health = cells[list(header).index("health")] if "health" in header else None
        if health is not None:
            health.stylize("green" if health.plain == "ok" else "red")
        table.add_row(*cells)
    Console(file=sys.stdout).print(table)


# ------------------------------------------------------------------ --wait-synced
STATE_SYNC_DONE: Final = "restored"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class StateSyncProgress:
    """The ``state_sync`` object of ``/status``: a snapshot being found, fetched and
    checked (phase ``discovering``, ``fetching``, ``verifying``), ``restored``, or
    ``failed`` (the node starts over by itself; ``error`` says why)."""

    phase: str
    height: int | None = None  # the snapshot's height, once one is chosen
    chunks_done: int = 0
    chunks_total: int = 0
    peers: int = 0  # offers while discovering, sources while fetching
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.phase == STATE_SYNC_DONE

    def describe(self) -> str:
        """One phrase for a progress line, e.g. ``state sync: fetching 12/40 chunks of
        height 1024``."""
        of = "" if self.height is None else f" of height {self.height}"
        if self.phase == "discovering":
            return f"state sync: discovering snapshots ({self.peers} offers so far)"
        if self.phase in ("fetching", "verifying"):
            chunks = f"{self.chunks_done}/{self.chunks_total} chunks" if self.chunks_total else ""
            what = " ".join(part for part in (chunks, of.strip()) if part)
            return f"state sync: {self.phase} {what}".rstrip() + f" (from {self.peers} peers)"
        if self.phase == "failed":
            return f"state sync: failed, retrying ({self.error or 'no reason given'})"
        if self.done:
            at = "" if self.height is None else f" at height {self.height}"
            return f"state sync: restored{at}"
        return f"state sync: {self.phase}{of}"


def state_sync_progress(st: dict[str, Any]) -> StateSyncProgress | None:
    """The ``state_sync`` of a ``/status`` answer, or None when it has none (an older
    node) or it is null (no state sync on this node)."""
    doc = st.get("state_sync")
    if not isinstance(doc, dict):
        return None
    height = doc.get("height")
    error = doc.get("error")
    return StateSyncProgress(
        phase=str(doc.get("phase") or "unknown"),
        height=height if isinstance(height, int) and not isinstance(height, bool) else None,
        chunks_done=_count(doc.get("chunks_done")),
        chunks_total=_count(doc.get("chunks_total")),
        peers=_count(doc.get("peers")),
        error=None if error is None else str(error),
    )


@dataclass(frozen=True)
class SyncState:
    """How far a node is from its peers: ``best`` is the highest height a linked peer
    reported (None before any did); ``restore`` is its state sync, if it reports one."""

    height: int
    best: int | None
    syncing: bool
    linked: int
    caught_up: bool
    restore: StateSyncProgress | None = None

    @property
    def restoring(self) -> bool:
        """A state sync is under way (not yet restored): not caught up, whatever the height."""
        return self.restore is not None and not self.restore.done

    def describe(self) -> str:
        if self.restoring:
            assert self.restore is not None
            return f"{self.restore.describe()}, {self.linked} peers linked"
        if self.caught_up:
            return f"height {self.height}, caught up"
        if self.best is None:
            return f"height {self.height}, no peer has told its height yet ({self.linked} linked)"
        what = "syncing" if self.syncing else "behind"
        return f"height {self.height} of {self.best} ({what}, {self.linked} peers linked)"


def sync_state(report: Report) -> SyncState | None:
    """Where the node is, or None when it did not answer.

    Caught up: no state sync under way (``state_sync`` missing, null or ``restored``),
    not syncing and within ``SYNC_SLACK`` heights of the best peer height a linked peer
    reported; a lone validator with no one to sync from is caught up."""
    st = report.status
    if st is None:
        return None
    height = int(st.get("height") or 0)
    syncing = bool(st.get("syncing"))
    linked = int(st.get("peers") or 0)
    sync = st.get("sync") or {}
    if report.peers is not None:
        heights = [
            p["height"]
            for p in report.peers
            if p.get("connected", True) and isinstance(p.get("height"), int)
        ]
    else:
        heights = [sync["best_peer_height"]] if sync.get("best_peer_height") else []
    best = max(heights) if heights else None
    alone = st.get("validators") == 1 and st.get("validator_index") is not None and not linked
    restore = state_sync_progress(st)
    caught_up = (
        not syncing
        and (restore is None or restore.done)
        and (alone or (best is not None and height + SYNC_SLACK >= best))
    )
    return SyncState(height, best, syncing, linked, caught_up, restore)


Show = Callable[[str, SyncState | None, str | None], None]


@contextlib.contextmanager
def _sync_display(label: str) -> Iterator[Show]:
    """A bar (height of best peer height) on a terminal (stderr); otherwise a
    progress line on stderr every ``PLAIN_EVERY_S`` seconds."""
    if not is_terminal(sys.stderr):
        every = Every(PLAIN_EVERY_S)

        def line(name: str, state: SyncState | None, error: str | None) -> None:
            if every.due(time.monotonic()):
                what = state.describe() if state else f"not answering ({error})"
                click.echo(f"{name}: {what}", err=True)

        yield line
        return
    columns = ("{task.description}", "bar", "count", "{task.fields[detail]}", "elapsed")
    with TaskBar(label, columns, detail="") as bar:

        def show(name: str, state: SyncState | None, error: str | None) -> None:
            if state is None:
                bar.update(description=name, detail=f"not answering ({error})")
                return
            if state.restoring:  # the bar counts chunks until the snapshot is restored
                assert state.restore is not None
                restore = state.restore
                bar.update(
                    description=name,
                    completed=restore.chunks_done,
                    total=restore.chunks_total or None,
                    detail=restore.describe(),
                )
                return
            total = None if state.best is None else max(state.best, state.height, 1)
            if state.caught_up or state.syncing:
                detail = "caught up" if state.caught_up else "syncing"
            else:
                detail = "waiting for peer heights" if state.best is None else "behind"
            bar.update(description=name, completed=state.height, total=total, detail=detail)

        yield show


def wait_until_synced(target: Target, timeout: float) -> tuple[Report, SyncState, float]:
    """Poll the node until it has caught up (see ``sync_state``); ``ClickException`` at
    ``timeout`` seconds. A node that does not answer yet (just started) is polled on."""
    started = time.monotonic()
    deadline = started + timeout
    with _sync_display(target.name) as show:
        while True:
            left = deadline - time.monotonic()
            report = fetch(target, max(0.1, min(REQUEST_TIMEOUT, left)))
            state = sync_state(report)
            show(report.name, state, report.error)
            if state is not None and state.caught_up:
                return report, state, time.monotonic() - started
            left = deadline - time.monotonic()
            if left <= 0:
                where = state.describe() if state else f"not answering ({report.error})"
                raise click.ClickException(
                    f"{report.name} has not caught up within {timeout:g} s: {where}"
                )
            time.sleep(min(POLL_S, left))


# ------------------------------------------------------------------ the command
@click.command(name="status")
@options.home(
    "A local node's home: its config.toml gives the admin address and token file.",
    required=False,
)
@click.option("--admin", help="The node's admin API, e.g. http://127.0.0.1:26658.")
@click.option(
    "--token-file",
    type=options.FILE,
    help="The admin token file (with --admin).",
)
@click.option(
    "--testnet",
    "testnet_dir",
    type=click.Path(path_type=Path),
    help=f"A testnet directory (its {TESTNET_FILE}): one row per node.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list with --testnet).")
@click.option(
    "--wait-synced",
    is_flag=True,
    help="Wait until the node has caught up with its peers (a progress bar on a terminal).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds --wait-synced waits before giving up.",
)
@click.pass_context
def status(
    ctx: click.Context,
    home: Path | None,
    admin: str | None,
    token_file: Path | None,
    testnet_dir: Path | None,
    as_json: bool,
    wait_synced: bool,
    timeout: float,
) -> None:
    """A node's status as a table (--home DIR, or --admin URL --token-file FILE), or one
    row per node of a testnet (--testnet DIR).

    Each node is asked GET /status, /health and /peers on its admin API; a testnet's
    nodes are asked at once, and a node that does not answer shows "down" and why.
    With --wait-synced, polls the node until it is within a couple of heights of its
    best peer and not syncing (run it after `hygeia restore` and `hygeia start`); a
    node joining by state sync (`hygeia init --join`) must first have restored its
    snapshot: the progress shows the phase and the chunks fetched, and a failed
    attempt its error (the node retries by itself, the wait goes on).

    \b
    Exit status:
      0  every node asked answered and is healthy (GET /health 200);
         with --wait-synced: the node caught up
      1  a node is down or unhealthy (its reasons are shown), or a file given
         cannot be used; with --wait-synced: the timeout passed first
      2  wrong options
    """
    from_env = ctx.get_parameter_source("home") is ParameterSource.ENVIRONMENT
    if from_env and (admin or token_file or testnet_dir):
        home = None  # HYGEIA_HOME gives way to an explicit choice
    chosen = sum((home is not None, bool(admin or token_file), testnet_dir is not None))
    if chosen != 1:
        raise click.UsageError(
            "give one of --home DIR, --admin URL --token-file FILE, or --testnet DIR"
        )
    if ctx.get_parameter_source("timeout") is ParameterSource.COMMANDLINE and not wait_synced:
        raise click.UsageError("--timeout goes with --wait-synced")
    if testnet_dir is not None:
        if wait_synced:
            raise click.UsageError(
                "--wait-synced watches one node: give --home DIR or --admin URL --token-file FILE"
            )
        reports = fetch_all(testnet_targets(testnet_dir))
        if as_json:
            echo([r.to_json() for r in reports])
        else:
            healthy = sum(r.healthy for r in reports)
            _print_table(
                TESTNET_HEADER,
                testnet_rows(reports),
                title=f"{healthy} of {len(reports)} nodes healthy",
            )
        ctx.exit(0 if all(r.healthy for r in reports) else 1)

    if home is not None:
        target = home_target(home, warn=lambda w: click.echo(f"warning: {w}", err=True))
    else:
        if not admin or not token_file:
            raise click.UsageError("--admin URL and --token-file FILE go together")
        try:
            token = read_admin_token(token_file)
        except HomeError as exc:
            raise click.ClickException(str(exc)) from None
        target = Target(admin, admin, token)

    if wait_synced:
        report, state, waited = wait_until_synced(target, timeout)
        if as_json:
            echo(report.to_json())
        else:
            best = "-" if state.best is None else state.best
            click.echo(
                f"{report.name} caught up: height {state.height} (best peer {best}), "
                f"after {waited:.1f} s"
            )
        ctx.exit(0)

    report = fetch(target)
    if as_json:
        echo(report.to_json())
    elif report.up:
        _print_table(None, node_rows(report))
    else:
        raise click.ClickException(_health_text(report))
    ctx.exit(0 if report.healthy else 1)


COMMANDS: tuple[click.Command, ...] = (status,)
