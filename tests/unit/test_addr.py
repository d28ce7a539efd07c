"""node/net/addr.py: the one host:port and ID@HOST:PORT parser (config, genesis, transport)."""

from __future__ import annotations

import pytest

from node.net.addr import Peer, is_loopback_host, parse_host_port, parse_peer

PEER_ID = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:26656", ("0.0.0.0", 26656)),
        ("localhost:1", ("localhost", 1)),
        ("node-1.example.org:65535", ("node-1.example.org", 65535)),
        ("[::1]:26656", ("::1", 26656)),
        ("[2001:db8::7]:80", ("2001:db8::7", 80)),
    ],
)
def test_host_port_accepted(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "localhost",
        ":26656",
        "host:",
        "host:port",
        "host:65536",
        "host:0",
        "::1:26656",
        "[::1]26656",
        "[nothost]:1",
        "bad_host:1",
        "999.1.1.1:1",
        "a b:1",
    ],
)
def test_host_port_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


def test_peer_addresses() -> None:
    """The addresses peers are dialled at: IPv4, bracketed IPv6, DNS names; bad ones refused."""
    assert parse_host_port("127.0.0.1:26656") == ("127.0.0.1", 26656)
    assert parse_host_port("[::1]:80") == ("::1", 80)
    assert parse_host_port("node-3.example:9") == ("node-3.example", 9)
    for bad in ["nohost", ":80", "h:0", "h:70000", "h:x", "::1:80"]:
        with pytest.raises(ValueError):
            parse_host_port(bad)


def test_peer_entries() -> None:
    """ID@HOST:PORT: the id is 64 hex digits (lower-cased), the address a valid host:port."""
    assert parse_peer(f"{PEER_ID.upper()}@10.0.0.1:26656") == Peer(PEER_ID, "10.0.0.1:26656")
    assert str(Peer(PEER_ID, "[::1]:1")) == f"{PEER_ID}@[::1]:1"
    for bad in ["10.0.0.1:26656", f"{PEER_ID[:-2]}@10.0.0.1:1", f"{PEER_ID}@nohost"]:
        with pytest.raises(ValueError):
            parse_peer(bad)


def test_loopback_hosts() -> None:
    """localhost, 127/8 and ::1 are loopback; other hosts and names are not."""
    assert all(map(is_loopback_host, ["localhost", "localhost.", "127.0.0.1", "127.9.9.9", "::1"]))
    assert not any(map(is_loopback_host, ["10.0.0.1", "example.org", "0.0.0.0"]))
