"""systemd service notifications (``sd_notify``) with the standard library only.

Under a ``Type=notify`` unit systemd sets ``NOTIFY_SOCKET`` to the address of a
unix datagram socket; the service sends newline-separated ``KEY=VALUE``
assignments to it, one datagram per notification (see sd_notify(3)):

* ``READY=1``: start-up is complete; ``hygeia start`` sends it once the
  database, the peer transport, the consensus driver and both HTTP listeners
  are open, so that units ordered ``After=hygeia.service`` find the APIs up;
* ``STATUS=...``: a one-line human-readable state, shown by ``systemctl status``;
* ``STOPPING=1``: shutdown has begun.

The address is a filesystem path (``/run/systemd/notify``) or, when it starts
with ``@``, a name in Linux's abstract namespace (the ``@`` becomes a NUL byte).
Without ``NOTIFY_SOCKET`` (not run by systemd, or ``Type=simple``) every call is
a no-op returning False. A notification that cannot be delivered is logged as a
warning and never stops the node: the service manager's own timeouts deal with a
service that never reports ready.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Final

from node.ops import logs

__all__ = [
    "ENV_VAR",
    "NotifyError",
    "notify",
    "ready",
    "socket_address",
    "status",
    "stopping",
]

ENV_VAR: Final = "NOTIFY_SOCKET"

log = logs.get_logger(__name__)


class NotifyError(ValueError):
    """``NOTIFY_SOCKET`` holds an address this module cannot use."""


def socket_address(value: str) -> str | bytes:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value.

    ``/path`` stays a path; ``@name`` becomes the abstract address ``b"\\0name"``.
    Anything else (a relative path, an empty ``@``, ``vsock:...``) is a ``NotifyError``.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise NotifyError(f"{ENV_VAR}={value!r}: expected an absolute path or an @abstract socket name")


def _clean(value: str) -> str:
    # one assignment per line: a newline inside a value would start another one
    return " ".join(value.split())


def notify(*assignments: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=VALUE`` assignments as one datagram; True when sent.

    False, without doing anything, when ``NOTIFY_SOCKET`` is unset or empty; False
    with a warning logged when the address is unusable or the send fails.
    """
    value = (os.environ if env is None else env).get(ENV_VAR, "")
    if not value or not assignments:
        return False
    try:
        address = socket_address(value)
    except NotifyError as exc:
        log.warning("cannot notify the service manager", error=str(exc))
        return False
    message = "\n".join(assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.warning(
            "cannot notify the service manager", socket=value, error=exc.strerror or str(exc)
        )
        return False
    return True


def ready(status_text: str = "", *, env: Mapping[str, str] | None = None) -> bool:
    """``READY=1``, with ``STATUS=status_text`` when given."""
    extra = [f"STATUS={_clean(status_text)}"] if status_text else []
    return notify("READY=1", *extra, env=env)


def stopping(status_text: str = "", *, env: Mapping[str, str] | None = None) -> bool:
    """``STOPPING=1``, with ``STATUS=status_text`` when given."""
    extra = [f"STATUS={_clean(status_text)}"] if status_text else []
    return notify("STOPPING=1", *extra, env=env)


def status(status_text: str, *, env: Mapping[str, str] | None = None) -> bool:
    """``STATUS=status_text`` alone."""
    return notify(f"STATUS={_clean(status_text)}", env=env)
