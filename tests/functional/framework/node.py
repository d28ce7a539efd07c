"""One node process of a functional test: its home, ports, log, and how it is started.

Every node runs as its own process, ``sys.executable -m node.cli start --home
H`` (``node_argv``). On Linux the process first asks for SIGKILL when the test
process dies (a tiny ``-c`` prelude, then ``execv`` into exactly that
command), so no node outlives a killed test run. ``configure_home`` edits a
home's config.toml before a start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from node.setup.config import load_config
from tests.functional.framework.waiting import FrameworkError

STOP_TIMEOUT = 20.0
LOG_TAIL_LINES = 25

# Ask for SIGKILL when the parent (thread) dies, then become the node process.
_PRELUDE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)  # the test process is already gone\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def node_argv(home: Path | str, module: str = "node.cli") -> list[str]:
    """The argv of ``hygeia start --home HOME``, behind the prelude that ties the node's
    life to this (thread of the) test process on Linux. ``module`` runs another program
    with the same command line instead (``python -m MODULE start --home HOME``): a
    test-only one such as ``tests.chaos.byzantine_node``."""
    command = ["-m", module, "start", "--home", str(home)]
    if sys.platform == "linux":
        return [sys.executable, "-c", _PRELUDE, str(os.getpid()), *command]
    return [sys.executable, *command]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a node or ``hygeia`` process: this one's, less the HYGEIA_*
    variables of the calling shell (they would override the nodes' config files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGEIA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def faketime_library() -> str:
    """The path of libfaketime (Debian's ``faketime`` package); ``FrameworkError`` if absent."""
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libs:
        raise FrameworkError("libfaketime is not installed (apt-get install faketime)")
    return str(libs[0])


def skewed_clock_env(offset: str | None) -> dict[str, str]:
    """The environment that runs a process with its wall clock moved by ``offset``
    (libfaketime's syntax: "+600" is ten minutes ahead, "-90" a minute and a half
    behind); none for ``None``. Only the wall clock moves: an NTP-skewed host's
    monotonic clock is right, so timers keep their length.

    A trap of libfaketime 0.9.10 with ``DONT_FAKE_MONOTONIC``: ``time.sleep``
    fails with EINVAL (its ``clock_nanosleep``). The node never calls it (its
    waits are asyncio timers); a program that does cannot run under this."""
    if offset is None:
        return {}
    return {"LD_PRELOAD": faketime_library(), "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}


def configure_home(home: Path, settings: Mapping[str, str]) -> None:
    """Set keys of ``home/config.toml``, e.g. ``{"admin.enable_mutations": "true"}``.

    Values are TOML literals (``'"127.0.0.1:9"'`` for a string). In the key's
    ``[section]`` its line, set or commented out (``# key = default``, as every
    generated config.toml has), is replaced; the result must load.
    """
    path = home / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    for dotted, value in settings.items():
        section, _, key = dotted.partition(".")
        current, done = "", False
        for n, line in enumerate(lines):
            text = line.strip()
            if text.startswith("[") and text.endswith("]"):
                current = text[1:-1].strip()
            elif current == section and text.lstrip("# ").split("=")[0].strip() == key:
                lines[n] = f"{key} = {value}"
                done = True
                break
        if not done:
            raise FrameworkError(f"{path}: no line for [{section}] {key} to set")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_config(home, env={})  # a bad value fails here, not in the node


# ------------------------------------------------------------------ nodes
@dataclass
class NodeProcess:
    """One node of the network: its home, ports, log and (while running) process."""

    index: int
    name: str
    home: Path
    p2p: int
    api: int
    admin: int
    token_file: Path
    log_path: Path
    member_key: nacl.signing.SigningKey
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, text: str) -> bool:
        """Whether any run of this node logged ``text``."""
        try:
            return text in self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
