"""Functional: ``hygeia start`` under a Type=notify unit's protocol (NOTIFY_SOCKET).

The test plays systemd: it binds a unix datagram socket, starts a real node
process with ``NOTIFY_SOCKET`` pointing at it, and checks that READY=1 comes only
once both HTTP listeners answer, that nothing claims readiness earlier, and that
SIGTERM brings STOPPING=1 and exit status 0.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from node.setup import testnet
from tests.functional.framework import _PRELUDE, HOST, STOP_TIMEOUT, TIMEOUT, reserve_base_port


def _get(url: str, path: str, token: str | None = None) -> int:
    """The HTTP status of GET ``url + path``; raises OSError if nothing answers."""
    port = urlsplit(url).port
    assert port is not None
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _receive(sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> list[str]:
    """The assignments of the next datagram; fails if the node exits or it takes too long."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            return sock.recv(4096).decode("utf-8").split("\n")
        except TimeoutError:
            if proc.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise AssertionError(
                    f"node exited with {proc.returncode} before notifying; log:\n{tail}"
                ) from None
    raise AssertionError(f"no notification within {TIMEOUT:g}s")


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
        command = ["-m", "node.cli", "start", "--home", node["home"]]
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "HYGEIA_LOG_FORMAT": "json"}
        with sock, log.open("ab") as out:
            # the framework's prelude: the node gets SIGKILL if this test process dies
            prelude = ["-c", _PRELUDE, str(os.getpid())] if sys.platform == "linux" else []
            proc = subprocess.Popen(
                [sys.executable, *prelude, *command],
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
