"""Functional: ``hygeia start`` under a Type=notify unit's protocol (NOTIFY_SOCKET).

The test plays systemd: it binds a unix datagram socket, starts a real node
process with ``NOTIFY_SOCKET`` pointing at it, and checks that READY=1 comes only
once both HTTP listeners answer, that nothing claims readiness earlier, and that
SIGTERM brings STOPPING=1 and exit status 0.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from node.setup import testnet
from tests.functional.framework import (
    STOP_TIMEOUT,
    child_env,
    fetch,
    node_argv,
    reserve_base_port,
    wait_until,
)


def _get(url: str, path: str, token: str | None = None) -> int:
    """The HTTP status of GET ``url + path``; raises OSError if nothing answers."""
    port = urlsplit(url).port
    assert port is not None
    return fetch(port, path, token=token, timeout=5).status


def _receive(sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> list[str]:
    """The assignments of the next datagram; fails if the node exits or it takes too long."""

    def alive() -> None:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise AssertionError(
                f"node exited with {proc.returncode} before notifying; log:\n{tail}"
            )

    def datagram() -> list[str] | None:
        try:  # the socket's timeout paces the polls
            return sock.recv(4096).decode("utf-8").split("\n")
        except TimeoutError:
            return None

    received: list[str] = wait_until(
        "a notification on NOTIFY_SOCKET",
        datagram,
        lambda d: d is not None,
        interval=0,
        check=alive,
    )
    return received


def test_ready_only_once_listeners_answer_and_stopping_on_sigterm() -> None:
    # short path: sun_path holds at most 107 bytes
    workdir = Path(tempfile.mkdtemp(prefix="hygeia-notify-"))
    block = reserve_base_port(1)
    proc: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        meta = testnet.testnet_init(
            workdir / "net", validators=1, base_port=block.base, chain_id="hygeia-notify"
        )
        node = meta["nodes"][0]
        token = Path(node["admin_token_file"]).read_text(encoding="utf-8").strip()
        sock_path = workdir / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        log = workdir / "node.log"
        env = child_env(NOTIFY_SOCKET=str(sock_path), HYGEIA_LOG_FORMAT="json")
        with sock, log.open("ab") as out:
            # the node gets SIGKILL if this test process dies
            proc = subprocess.Popen(
                node_argv(node["home"]),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            first = _receive(sock, proc, log)
            # systemd has been told the service is up: both listeners must answer now
            assert _get(node["api"], "/v1/blocks/latest") < 500
            assert _get(node["admin"], "/health", token) in (200, 503)
            assert _get(node["admin"], "/status", token) == 200
            assert first[0] == "READY=1", first
            assert any(a.startswith("STATUS=") for a in first[1:]), first

            proc.send_signal(signal.SIGTERM)
            after = _receive(sock, proc, log)
            assert after[0] == "STOPPING=1", after
            assert proc.wait(timeout=STOP_TIMEOUT) == 0
        ok = True
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        block.release()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir} (node log: {workdir / 'node.log'})")
