"""``hygeia status``: tables, testnet rows, a down node, exit codes and --wait-synced,
against fake admin APIs (small aiohttp apps on loopback, each in its own thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from node.cli import status as cli_status
from node.cli.main import main
from node.setup.home import init_home
from tests.support.ports import unused_port

TOKEN = "test-token-123"


def _status(name: str, height: int = 42, **over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "node_id": "ab" * 32,
        "name": name,
        "chain_id": "hygeia-test",
        "height": height,
        "epoch": 2,
        "role": "validator",
        "last_block_hash": "0123456789abcdef" * 4,
        "last_block_time": 1_700_000_000_000,
        "view": 1,
        "primary": 1,
        "validator_index": 0,
        "validators": 4,
        "peers": 3,
        "syncing": False,
        "sync": {
            "local_height": height,
            "target_height": height,
            "best_peer_height": height,
            "requests_in_flight": 0,
        },
        "mempool_size": 7,
        "version": "9.9.9",
    }
    st.update(over)
    return st


def _peers(heights: list[int | None]) -> list[dict[str, Any]]:
    return [{"node_id": f"{i:064x}", "connected": True, "height": h} for i, h in enumerate(heights)]


@dataclass
class FakeNode:
    """An admin API answering from ``status``, ``health`` and ``peers`` (read per request;
    ``on_status`` may change them first). Wrong or missing token: 401."""

    status: dict[str, Any]
    health: tuple[bool, list[str]] = (True, [])
    peers: list[dict[str, Any]] = field(default_factory=lambda: _peers([42, 42, 41, None]))
    on_status: Callable[[FakeNode], None] | None = None
    url: str = ""
    status_calls: int = 0


def _app(fake: FakeNode) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            err = {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}}
            return web.json_response(err, status=401)
        result: web.StreamResponse = await handler(request)
        return result

    async def status(_: web.Request) -> web.Response:
        fake.status_calls += 1
        if fake.on_status is not None:
            fake.on_status(fake)
        return web.json_response(fake.status)

    async def health(_: web.Request) -> web.Response:
        ok, reasons = fake.health
        return web.json_response({"ok": ok, "reasons": reasons}, status=200 if ok else 503)

    async def peers(_: web.Request) -> web.Response:
        return web.json_response({"peers": fake.peers})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    app.router.add_get("/peers", peers)
    return app


@pytest.fixture
def serve() -> Iterator[Callable[[FakeNode], FakeNode]]:
    """Start fake admin APIs on 127.0.0.1 (an ephemeral port each); stopped at the end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    async def start(fake: FakeNode) -> None:
        runner = web.AppRunner(_app(fake), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def add(fake: FakeNode) -> FakeNode:
        asyncio.run_coroutine_threadsafe(start(fake), loop).result(timeout=10)
        return fake

    yield add

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin_token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["status", *args], env={"HYGEIA_HOME": None})


def _lines(result: Result) -> dict[str, str]:
    """The plain key/value table as a dict (first column -> the rest)."""
    out = {}
    for line in result.output.splitlines():
        key, _, value = line.partition("  ")
        out[key.strip()] = value.strip()
    return out


# ------------------------------------------------------------------ one node
def test_one_node_plain_table_and_exit_0(
    serve: Callable[[FakeNode], FakeNode], token_file: Path
) -> None:
    fake = serve(FakeNode(_status("node0")))
    result = run("--admin", fake.url, "--token-file", str(token_file))
    assert result.exit_code == 0, result.output
    rows = _lines(result)
    assert rows["name"] == "node0"
    assert rows["health"] == "ok"
    assert rows["height"] == "42"
    assert (rows["epoch"], rows["role"]) == ("2", "validator")
    assert rows["last block"] == "0123456789abcdef"
    assert rows["view"] == "1"
    assert rows["primary"] == "1"
    assert rows["validator"] == "yes (index 0 of 4)"
    assert rows["peers"] == "3/4"  # linked / known
    assert rows["syncing"] == "no"
    assert rows["mempool"] == "7"
    assert rows["version"] == "9.9.9"
    # aligned: every value starts in the same column
    starts = {
        len(line) - len(line.split("  ", 1)[1].lstrip()) for line in result.output.splitlines()
    }
    assert len(starts) == 1


def test_unhealthy_syncing_node_shows_reasons_and_progress_and_exits_1(
    serve: Callable[[FakeNode], FakeNode], token_file: Path
) -> None:
    st = _status("obs", height=120, syncing=True, validator_index=None, primary=0, role="observer")
    st["sync"].update(target_height=500, best_peer_height=560)
    fake = serve(FakeNode(st, health=(False, ["syncing", "disk low: 100 MiB free"])))
    result = run("--admin", fake.url, "--token-file", str(token_file))
    assert result.exit_code == 1, result.output
    rows = _lines(result)
    assert rows["health"] == "syncing; disk low: 100 MiB free"
    assert rows["syncing"] == "syncing 120/560"
    assert rows["validator"] == "no (observer of 4 validators)"
    assert rows["role"] == "observer"
    assert rows["primary"] == "0"


def test_primary_marks_this_node(serve: Callable[[FakeNode], FakeNode], token_file: Path) -> None:
    fake = serve(FakeNode(_status("node1", validator_index=1, primary=1)))
    result = run("--admin", fake.url, "--token-file", str(token_file))
    assert _lines(result)["primary"] == "1 (this node)"


def test_one_node_json(serve: Callable[[FakeNode], FakeNode], token_file: Path) -> None:
    fake = serve(FakeNode(_status("node0"), health=(False, ["no peers"])))
    result = run("--admin", fake.url, "--token-file", str(token_file), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["height"] == 42 and doc["name"] == "node0" and doc["up"] is True
    assert doc["health"] == {"ok": False, "reasons": ["no peers"]}
    assert doc["peers_known"] == 4 and doc["admin"] == fake.url


def test_one_node_down_is_one_error_line(token_file: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    result = run("--admin", url, "--token-file", str(token_file))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: down: {url}/status: cannot reach the node")
    assert len(result.output.strip().splitlines()) == 1
    down = json.loads(run("--admin", url, "--token-file", str(token_file), "--json").output)
    assert down["up"] is False and "cannot reach" in down["error"] and down["health"] is None


def test_wrong_token_says_so(serve: Callable[[FakeNode], FakeNode], tmp_path: Path) -> None:
    fake = serve(FakeNode(_status("node0")))
    bad = tmp_path / "bad_token"
    bad.write_text("nope\n", encoding="utf-8")
    bad.chmod(0o600)  # a looser token file is refused before any request
    result = run("--admin", fake.url, "--token-file", str(bad))
    assert result.exit_code == 1
    assert "401 unauthorized" in result.output


def test_home_reads_admin_address_and_token_from_config(
    serve: Callable[[FakeNode], FakeNode], tmp_path: Path
) -> None:
    fake = serve(FakeNode(_status("clinic")))
    port = int(fake.url.rsplit(":", 1)[1])
    home = tmp_path / "clinic"
    init_home(home, settings={"admin.listen": f"0.0.0.0:{port}"}, env={})
    (home / "admin_token").write_text(TOKEN + "\n", encoding="utf-8")  # the fake's token
    result = CliRunner().invoke(main, ["status"], env={"HYGEIA_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert _lines(result)["name"] == "clinic"
    explicit = run("--home", str(home), "--json")
    assert json.loads(explicit.output)["admin"] == f"http://127.0.0.1:{port}"


def test_rich_table_on_a_terminal(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = serve(FakeNode(_status("node0"), health=(False, ["consensus stopped: [boom]"])))
    monkeypatch.setattr(cli_status, "is_terminal", lambda stream: True)
    args = ["status", "--admin", fake.url, "--token-file", str(token_file)]
    result = CliRunner().invoke(main, args, env={"HYGEIA_HOME": None, "FORCE_COLOR": "1"})
    assert result.exit_code == 1
    assert "\x1b[31mconsensus stopped: [boom]" in result.output  # red, and no markup eaten
    assert "syncing" in result.output and "0123456789abcdef" in result.output


# ------------------------------------------------------------------ a testnet
def _write_testnet(tmp_path: Path, nodes: list[tuple[str, str, Path]]) -> Path:
    out = tmp_path / "net"
    out.mkdir()
    doc = {
        "chain_id": "hygeia-test",
        "nodes": [
            {"name": n, "home": "/x", "node_id": "00" * 32, "p2p": "127.0.0.1:1", "api": a,
             "admin": a, "admin_token_file": str(t)}
            for n, a, t in nodes
        ],
    }  # fmt: skip
    (out / "testnet.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


def _rows(result: Result) -> dict[str, list[str]]:
    lines = result.output.splitlines()
    assert lines[0].split() == list(cli_status.TESTNET_HEADER)
    return {line.split()[0]: line.split(None, 9)[1:] for line in lines[1:]}


def test_testnet_all_healthy_exit_0(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, tmp_path: Path
) -> None:
    a = serve(FakeNode(_status("node0", height=10)))
    b = serve(FakeNode(_status("node1", height=11, mempool_size=0)))
    out = _write_testnet(tmp_path, [("node0", a.url, token_file), ("node1", b.url, token_file)])
    result = run("--testnet", str(out))
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert rows["node0"] == ["10", "2", "validator", "1", "1", "3/4", "no", "7", "ok"]
    assert rows["node1"][0] == "11" and rows["node1"][7] == "0"
    # the file itself is accepted too
    assert run("--testnet", str(out / "testnet.json")).exit_code == 0


def test_testnet_down_and_unhealthy_rows_exit_1(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, tmp_path: Path
) -> None:
    a = serve(FakeNode(_status("node0")))
    b = serve(FakeNode(_status("node1"), health=(False, ["no peers"])))
    dead = f"http://127.0.0.1:{unused_port()}"
    missing = tmp_path / "no_such_token"
    out = _write_testnet(
        tmp_path,
        [
            ("node0", a.url, token_file),
            ("node1", b.url, token_file),
            ("node2", dead, token_file),
            ("node3", a.url, missing),
        ],
    )
    result = run("--testnet", str(out))
    assert result.exit_code == 1, result.output
    rows = _rows(result)
    assert rows["node0"][-1] == "ok"
    assert rows["node1"][-1] == "no peers"
    assert rows["node2"][0] == "down"
    assert rows["node2"][-1].startswith(f"down: {dead}/status: cannot reach the node")
    assert rows["node3"][0] == "down" and "not found" in rows["node3"][-1]

    docs = json.loads(run("--testnet", str(out), "--json").output)
    assert [d["name"] for d in docs] == ["node0", "node1", "node2", "node3"]
    assert [d["up"] for d in docs] == [True, True, False, False]
    assert docs[1]["health"] == {"ok": False, "reasons": ["no peers"]}


def test_testnet_rich_table_on_a_terminal(
    serve: Callable[[FakeNode], FakeNode],
    token_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = serve(FakeNode(_status("node0")))
    dead = f"http://127.0.0.1:{unused_port()}"
    out = _write_testnet(tmp_path, [("node0", a.url, token_file), ("node1", dead, token_file)])
    monkeypatch.setattr(cli_status, "is_terminal", lambda stream: True)
    result = run("--testnet", str(out))
    assert result.exit_code == 1
    assert "1 of 2 nodes healthy" in result.output
    assert "┃ name" in result.output  # a rich table's heavy header
    assert "down" in result.output and "node1" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "testnet.json not found"),
        ("{not json", "is not valid JSON"),
        ('{"nodes": []}', '"nodes" must be a non-empty list'),
        ('{"nodes": [{"name": "n"}]}', 'nodes[0] needs the strings "name", "admin"'),
    ],
)
def test_testnet_file_errors_are_one_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "testnet.json").write_text(content, encoding="utf-8")
    result = run("--testnet", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert str(tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give one of --home DIR, --admin URL --token-file FILE, or --testnet DIR"),
        (("--admin", "http://x"), "--admin URL and --token-file FILE go together"),
        (("--testnet", "d", "--admin", "http://x"), "give one of"),
        (("--testnet", "d", "--wait-synced"), "--wait-synced watches one node"),
        (("--admin", "http://x", "--timeout", "3"), "--timeout goes with --wait-synced"),
    ],
)
def test_bad_options(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_help_documents_exit_status() -> None:
    result = run("--help")
    assert "Exit status:" in result.output
    assert "0  every node asked answered and is healthy" in result.output


# ------------------------------------------------------------------ --wait-synced
@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_status, "POLL_S", 0.02)
    monkeypatch.setattr(cli_status, "PLAIN_EVERY_S", 0.0)


def _catching_up(fake: FakeNode) -> None:
    """Each /status: 100 heights further, syncing until the peers' 560."""
    h = min(560, fake.status["height"] + 100)
    fake.status.update(height=h, syncing=h < 560)
    fake.status["sync"].update(local_height=h, target_height=560, best_peer_height=560)


def test_wait_synced_until_caught_up(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, fast_polls: None
) -> None:
    st = _status("node3", height=0, syncing=True)
    fake = serve(FakeNode(st, peers=_peers([560, 559, None]), on_status=_catching_up))
    result = CliRunner().invoke(
        main,
        ["status", "--admin", fake.url, "--token-file", str(token_file), "--wait-synced"],
        env={"HYGEIA_HOME": None},
    )
    assert result.exit_code == 0, result.output
    assert fake.status_calls >= 6  # 100, 200, ... 560
    assert "node3 caught up: height 560 (best peer 560)" in result.stdout
    assert "node3: height 100 of 560 (syncing, 3 peers linked)" in result.stderr


def test_wait_synced_progress_bar_on_a_terminal(
    serve: Callable[[FakeNode], FakeNode],
    token_file: Path,
    fast_polls: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_status, "is_terminal", lambda stream: True)
    st = _status("node3", height=0, syncing=True)
    fake = serve(FakeNode(st, peers=_peers([560]), on_status=_catching_up))
    result = run("--admin", fake.url, "--token-file", str(token_file), "--wait-synced", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["height"] == 560


def test_wait_synced_not_before_a_peer_reports_its_height(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, fast_polls: None
) -> None:
    """Just restarted: not syncing yet, but no peer height known: not caught up."""
    st = _status("node3", height=5, peers=0)
    fake = serve(FakeNode(st, peers=_peers([None, None])))
    result = run(
        "--admin", fake.url, "--token-file", str(token_file), "--wait-synced", "--timeout", "0.3"
    )
    assert result.exit_code == 1
    assert "Error: node3 has not caught up within 0.3 s: height 5, no peer has told its height" in (
        result.output
    )


def test_wait_synced_timeout_while_behind(
    serve: Callable[[FakeNode], FakeNode], token_file: Path, fast_polls: None
) -> None:
    st = _status("node3", height=100, syncing=True)
    fake = serve(FakeNode(st, peers=_peers([560])))
    result = run(
        "--admin", fake.url, "--token-file", str(token_file), "--wait-synced", "--timeout", "0.3"
    )
    assert result.exit_code == 1
    assert "has not caught up within 0.3 s: height 100 of 560 (syncing" in result.output


def test_wait_synced_keeps_polling_a_node_that_does_not_answer(
    token_file: Path, fast_polls: None
) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    result = run(
        "--admin", url, "--token-file", str(token_file), "--wait-synced", "--timeout", "0.5"
    )
    assert result.exit_code == 1
    assert f"Error: {url} has not caught up within 0.5 s: not answering" in result.output
    assert result.output.count("not answering") >= 2  # progress lines, then the error


def test_sync_state_rules() -> None:
    def state(heights: list[int | None], **over: Any) -> cli_status.SyncState:
        rep = cli_status.Report("n", "u", status=_status("n", **over), peers=_peers(heights))
        got = cli_status.sync_state(rep)
        assert got is not None
        return got

    assert state([42]).caught_up
    assert state([44], height=42).caught_up  # within SYNC_SLACK
    assert not state([45], height=42).caught_up
    assert not state([42], syncing=True).caught_up
    assert not state([None], height=0).caught_up
    lone = state([], validators=1, peers=0, height=0)
    assert lone.caught_up  # a one-validator chain has nobody to sync from
    assert cli_status.sync_state(cli_status.Report("n", "u", error="x")) is None
