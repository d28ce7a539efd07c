"""Background load for functional tests: a thread submitting pre-signed transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from node.core.tx import Tx
from tests.functional.framework.httpclient import HttpClient, NodeUnreachable
from tests.functional.framework.waiting import TIMEOUT, wait_until


@dataclass
class Accepted:
    tx_hash: str
    node: int


class Loader(threading.Thread):
    """Background submitter of pre-signed txs (see ``TestNetwork.load``)."""

    def __init__(
        self, api_ports: Sequence[int], txs: Sequence[Tx], targets: Iterable[int], rate: float
    ) -> None:
        """``api_ports[i]``: node ``i``'s client API port; ``targets``: node indices."""
        super().__init__(name="functional-loader", daemon=True)
        self._api_ports = list(api_ports)
        self._txs = list(txs)
        self._lock = threading.Lock()
        self._targets = sorted(targets)
        self._interval = 1.0 / rate
        self._halt = threading.Event()
        self.accepted: list[Accepted] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    @property
    def targets(self) -> list[int]:
        with self._lock:
            return list(self._targets)

    def set_targets(self, targets: Iterable[int]) -> None:
        """From now on submit only to these nodes (the request in hand finishes first);
        none: pause."""
        with self._lock:
            self._targets = sorted(targets)

    @property
    def submitted(self) -> int:
        with self._lock:
            return len(self.accepted)

    def accepted_by(self, node: int) -> list[str]:
        with self._lock:
            return [a.tx_hash for a in self.accepted if a.node == node]

    def _try(self, http: HttpClient, tx: Tx, rr: int) -> str:
        """One attempt: ``accepted``, ``final`` (refused for good), ``retry`` or ``paused``."""
        with self._lock:  # held across the request: set_targets waits for it
            if not self._targets:
                return "paused"
            i = self._targets[rr % len(self._targets)]
            try:
                status, body = http.request(self._api_ports[i], "POST", "/v1/txs", tx.wire)
            except NodeUnreachable as exc:
                status, body = 0, str(exc)
            if status == 202:
                self.accepted.append(Accepted(tx.hash, i))
                return "accepted"
            self.errors.append(f"node{i}: {status} {body}")
            # unreachable (0) or mempool full (503): try again; anything else is final
            return "retry" if status in (0, 503) else "final"

    def run(self) -> None:
        http = HttpClient()
        rr = 0
        next_at = time.monotonic()
        try:
            for tx in self._txs:
                while not self._halt.is_set():
                    outcome = self._try(http, tx, rr)
                    rr += 1
                    if outcome in ("accepted", "final"):
                        break
                    self._halt.wait(0.05)
                if self._halt.is_set():
                    return
                now = time.monotonic()
                next_at = max(next_at + self._interval, now - 1.0)  # no burst after a pause
                if next_at > now:
                    self._halt.wait(next_at - now)
        finally:
            http.close()
            self.done.set()

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def wait_done(self, timeout: float = TIMEOUT) -> None:
        wait_until(
            "the loader to submit every tx",
            lambda: self.submitted,
            lambda _n: self.done.is_set(),
            timeout=timeout,
        )
