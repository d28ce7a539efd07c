"""Network addresses as written in config, genesis and peer lists: one parser, one rule.

``host:port`` (``[v6]:port`` for IPv6; the host an IP literal or a DNS name) and
``ID@HOST:PORT`` peer entries. Every layer that reads an address (config, genesis,
the transport's dialer, the HTTP listeners) parses it here, so an address accepted
in one place is accepted in all.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from node.core.hexstr import HEX64
from node.core.uint import parse_uint

_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
# hosts on which a listener binds every interface
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::"})


def parse_host_port(text: str, *, allow_zero_port: bool = False) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into ``(host, port)``; ``ValueError`` if bad.

    The host is an IP literal or a DNS name; the port is 1..65535 (0 too when
    ``allow_zero_port``: a listener on port 0 gets a free port from the kernel).
    """
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise ValueError(f"expected [IPv6]:port, got {text!r}")
        host, port_text = text[1:end], text[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {text!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port, got {text!r}")
        if ":" in host:
            raise ValueError(f"write IPv6 addresses in brackets, [{host}]:{port_text}")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.fullmatch(host) or parse_uint(host.replace(".", ""), 253) is not None:
                raise ValueError(f"{host!r} in {text!r} is not a host name or IP address") from None
    if parse_uint(port_text, 5) is None:
        raise ValueError(f"port in {text!r} is not a number")
    port = int(port_text)
    low = 0 if allow_zero_port else 1
    if not low <= port <= 65535:
        raise ValueError(f"port in {text!r} must be in {low}..65535")
    return host, port


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Peer:
    """A peer to dial: its node id (64-hex Ed25519 public key) and ``host:port``."""

    id: str
    address: str

    def __str__(self) -> str:
        return f"{self.id}@{self.address}"


def parse_peer(text: str) -> Peer:
    """``ID@HOST:PORT`` -> ``Peer`` (id lower-cased); ``ValueError`` naming what is wrong."""
    node_id, sep, address = text.strip().partition("@")
    if not sep:
        raise ValueError(f"{text!r} is not ID@HOST:PORT")
    if not HEX64.fullmatch(node_id.lower()):
        raise ValueError(f"{text!r}: the peer id must be 64 hex digits (its node key)")
    parse_host_port(address)
    return Peer(node_id.lower(), address)
