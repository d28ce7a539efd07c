"""The ``hygeia`` command in functional tests: ``run_hygeia``, and ``cli_testnet``, a
testnet run as an operator runs one (``hygeia testnet init`` and ``testnet start``).

The story tests drive a network only through the ``hygeia`` command, as an
operator would; every test runs the command through ``run_hygeia``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from node.api.remote import ClientError, request_json
from node.setup import testnet
from tests.functional.framework.node import LOG_TAIL_LINES, child_env
from tests.functional.framework.ports import reserve_base_port
from tests.functional.framework.waiting import TIMEOUT, FrameworkError, wait_until

CLI_TIMEOUT = 120.0  # seconds a `hygeia` command may take before it fails the test


def hygeia_args(*args: str | Path) -> list[str]:
    """The argv of ``hygeia ARGS`` (``python -m node.cli``)."""
    return [sys.executable, "-m", "node.cli", *map(str, args)]


def run_hygeia(
    *args: str | Path, ok: bool = True, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``hygeia ARGS`` to its end, as an operator would, with ``child_env()``
    (no HYGEIA_* variable of the calling shell). With ``ok``, an exit status other
    than 0 fails the test with the command's output; a command still running after
    ``timeout`` seconds (a node that started, a wait that hangs) fails it too."""
    words = " ".join(map(str, args))
    try:
        proc = subprocess.run(
            hygeia_args(*args),
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FrameworkError(f"hygeia {words} did not exit: {exc}") from None
    if ok and proc.returncode != 0:
        raise FrameworkError(
            f"hygeia {words} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def hygeia_json(*args: str | Path, ok: bool = True) -> Any:
    """``run_hygeia(ARGS)``'s standard output, parsed as JSON."""
    return json.loads(run_hygeia(*args, ok=ok).stdout)


@contextlib.contextmanager
def cli_testnet(
    tmp: Path,
    validators: int = 4,
    *,
    edit_genesis: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """A testnet run as an operator runs one, for the story tests: ``hygeia testnet
    init`` in ``tmp/net`` on a reserved base port (``reserve_base_port``), then
    ``hygeia testnet start`` (one process, a child per node, log in
    ``tmp/testnet.log``) until every node's client API answers ``/v1/info``; at the
    end SIGINT (what Ctrl-C sends), SIGKILL of its session if it hangs.

    ``edit_genesis`` changes the genesis before the first start, written the same to
    every home (the genesis must be the same everywhere). Yields the content of
    ``testnet.json`` plus ``dir``, the testnet directory. On failure prints the tail
    of the log.
    """
    out = tmp / "net"
    log_path = tmp / "testnet.log"
    ports = reserve_base_port(validators)
    try:
        run_hygeia(
            "testnet", "init", "--validators", str(validators), "--out", out,
            "--base-port", str(ports.base), timeout=TIMEOUT,
        )  # fmt: skip
        meta: dict[str, Any] = json.loads((out / testnet.TESTNET_FILE).read_text("utf-8"))
        if edit_genesis is not None:
            homes = [Path(n["home"]) for n in meta["nodes"]]
            genesis = json.loads((homes[0] / "genesis.json").read_text("utf-8"))
            edit_genesis(genesis)
            text = json.dumps(genesis, indent=2, sort_keys=True) + "\n"
            for home in homes:
                (home / "genesis.json").write_text(text, encoding="utf-8")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                hygeia_args("testnet", "start", "--dir", str(out)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(),
                start_new_session=True,
            )

        def tail() -> str:
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            return "\n".join(lines[-LOG_TAIL_LINES:])

        def alive() -> None:
            if proc.poll() is not None:
                raise FrameworkError(f"testnet start exited {proc.returncode}:\n{tail()}")

        try:
            for node in meta["nodes"]:
                wait_until(
                    f"{node['name']}'s client API to answer /v1/info",
                    functools.partial(_answers, f"{node['api']}/v1/info"),
                    lambda answer: answer == "ok",
                    check=alive,
                )
            meta["dir"] = out
            yield meta
        except BaseException:
            print(f"\n=== story test failed: testnet in {out}, last lines of {log_path}:\n{tail()}")
            raise
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        ports.release()


def _answers(url: str) -> str:
    """``ok`` if ``GET url`` answers, else why not."""
    try:
        request_json("GET", url, timeout=2)
    except ClientError as exc:
        return str(exc)
    return "ok"
