"""node.ops.notify: sd_notify datagrams to NOTIFY_SOCKET (paths and abstract names)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.ops import notify


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound unix datagram socket at a filesystem path: (NOTIFY_SOCKET value, socket)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    try:
        yield str(path), sock
    finally:
        sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_socket_address_path_and_abstract() -> None:
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("@hygeia/notify") == b"\0hygeia/notify"


@pytest.mark.parametrize("value", ["relative.sock", "@", "vsock:2:1234"])
def test_socket_address_rejects_what_it_cannot_use(value: str) -> None:
    with pytest.raises(notify.NotifyError):
        notify.socket_address(value)


def test_without_notify_socket_everything_is_a_no_op() -> None:
    assert notify.ready("up", env={}) is False
    assert notify.stopping(env={"NOTIFY_SOCKET": ""}) is False
    assert notify.status("x", env={}) is False


def test_ready_with_status_is_one_datagram(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    assert notify.ready("serving at height 7", env={"NOTIFY_SOCKET": address}) is True
    assert _recv(sock) == ["READY=1", "STATUS=serving at height 7"]


def test_stopping_and_status(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    env = {"NOTIFY_SOCKET": address}
    assert notify.stopping(env=env) is True
    assert _recv(sock) == ["STOPPING=1"]
    assert notify.status("syncing\nREADY=1", env=env) is True
    # a newline in the text cannot smuggle in a second assignment
    assert _recv(sock) == ["STATUS=syncing READY=1"]


def test_reads_os_environ_by_default(
    receiver: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert notify.ready() is True
    assert _recv(sock) == ["READY=1"]


def test_abstract_namespace_socket() -> None:
    name = f"hygeia-test-{os.getpid()}-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        assert notify.ready("up", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert _recv(sock) == ["READY=1", "STATUS=up"]


def test_undeliverable_notification_is_reported_not_raised(tmp_path: Path) -> None:
    missing = str(tmp_path / "nobody-listens.sock")
    assert notify.ready("up", env={"NOTIFY_SOCKET": missing}) is False
    assert notify.stopping(env={"NOTIFY_SOCKET": "not-absolute"}) is False
