"""node/ops/logs.py: JSON vs console output, ISO timestamps, per-module levels, context, reopen."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.ops import logs


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    logs.reset()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logs.get_logger("node.test").info("block committed", height=7, txs=3)
    (event,) = lines(out)
    assert event["event"] == "block committed"
    assert event["level"] == "info"
    assert event["logger"] == "node.test"
    assert event["height"] == 7
    assert event["timestamp"].endswith("Z")
    assert "T" in event["timestamp"]


def test_console_renderer_on_a_tty() -> None:
    out = TTY()
    logs.configure(stream=out)
    logs.get_logger("node.test").info("block committed", height=7)
    text = out.getvalue()
    assert "block committed" in text
    assert "height" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_explicit_format_wins_over_the_terminal_check() -> None:
    tty = TTY()
    logs.configure(stream=tty, fmt="json")
    logs.get_logger("a").warning("x")
    assert lines(tty)[0]["event"] == "x"
    plain = io.StringIO()
    logs.configure(stream=plain, fmt="console")
    logs.get_logger("a").warning("y")
    assert not plain.getvalue().startswith("{")
    assert "y" in plain.getvalue()


def test_levels_global_and_per_module() -> None:
    out = io.StringIO()
    logs.configure(stream=out, level="warning", modules={"node.net": "debug"})
    logs.get_logger("node.net.peer").debug("dialing")
    logs.get_logger("node.net").info("listening")
    logs.get_logger("node.mempool").info("admitted")
    logs.get_logger("node.mempool").error("full")
    assert [e["event"] for e in lines(out)] == ["dialing", "listening", "full"]
    # a reconfiguration takes the module levels back
    out2 = io.StringIO()
    logs.configure(stream=out2, level="info")
    logs.get_logger("node.net.peer").debug("dialing")
    assert out2.getvalue() == ""


def test_context_helpers() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logs.bind_node("ab" * 32)
    logs.bind_height(10)
    logs.bind_view(2)
    log = logs.get_logger("node.consensus")
    with logs.bound(peer="p1"):
        log.info("vote")
    log.info("after")
    first, second = lines(out)
    assert (first["node_id"], first["height"], first["view"], first["peer"]) == (
        "ab" * 32,
        10,
        2,
        "p1",
    )
    assert "peer" not in second
    logs.clear_context()
    log.info("cleared")
    assert "node_id" not in lines(out)[-1]


def test_stdlib_records_get_the_same_format() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logging.getLogger("aiohttp.access").info("GET /status %s", 200)
    (event,) = lines(out)
    assert event["event"] == "GET /status 200"
    assert event["logger"] == "aiohttp.access"
    assert event["level"] == "info"


def test_exceptions_are_rendered_in_json() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logs.get_logger("x").exception("failed")
    (event,) = lines(out)
    assert event["level"] == "error"
    assert "RuntimeError: boom" in event["exception"]


def test_log_file_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node.log"
    out = TTY()
    logs.configure(stream=out, file=path)
    log = logs.get_logger("node.test")
    log.info("one")
    rotated = tmp_path / "node.log.1"
    path.rename(rotated)
    log.info("two")  # still into the renamed file
    logs.reopen()
    log.info("three")
    assert [json.loads(x)["event"] for x in rotated.read_text().splitlines()] == ["one", "two"]
    assert [json.loads(x)["event"] for x in path.read_text().splitlines()] == ["three"]
    assert "one" in out.getvalue()  # the console got them too, rendered for people


def test_bad_settings() -> None:
    with pytest.raises(logs.LogConfigError, match=r"log.level: unknown level 'loud'"):
        logs.configure(level="loud")
    with pytest.raises(logs.LogConfigError, match=r"log.modules.a: unknown level"):
        logs.configure(modules={"a": "x"})
    with pytest.raises(logs.LogConfigError, match=r"log.format"):
        logs.configure(fmt="xml")
    with pytest.raises(logs.LogConfigError, match=r"log.file: cannot open"):
        logs.configure(file="/nonexistent-dir/x.log", stream=io.StringIO())


def test_configure_from_config(tmp_path: Path) -> None:
    from node.setup.config import load_config

    (tmp_path / "config.toml").write_text(
        '[log]\nlevel = "error"\nformat = "json"\nfile = "node.log"\n'
    )
    cfg = load_config(tmp_path, env={})
    out = TTY()
    logs.configure_from_config(cfg, stream=out)
    logs.get_logger("n").warning("dropped")
    logs.get_logger("n").error("kept")
    assert [e["event"] for e in lines(out)] == ["kept"]
    assert json.loads((tmp_path / "node.log").read_text())["event"] == "kept"
