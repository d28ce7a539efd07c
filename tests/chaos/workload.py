"""The workload of a chaos run: client threads that submit transactions and read their status.

Each ``Client`` is one Jepsen *process*: a thread with at most one operation
outstanding, recording every invoke and completion in the shared history
(``tests/chaos/history.py``). In a loop it

* submits a fresh signed ``data.anchor`` (a random digest, signed by a
  member's key) to a random node, every ``1 / rate`` seconds, and
* between submissions reads the status of its transactions on random nodes:
  each accepted one until a read finds it in a block (each at most every
  ``REREAD_S``, for at most ``GIVE_UP_S``: the checker, not the client,
  decides about a tx never found, from the chains), and now and then one
  already found, on another node, so that the checker's monotonic-read rule
  has something to compare.

Outcomes: a 202 is ``ok``/accepted; an answer that refuses (4xx, 503) is
``fail`` with the API's error code; a refused connection is ``fail`` (the node
never saw the request); a timeout or a broken connection is ``info`` (the tx
may or may not have got in). Reads: a 200 is ``ok`` with the node's answer;
anything else is ``fail`` (refused) or ``info`` (timed out).

Targets are all nodes, including killed, paused and partitioned ones: that is
what a client of a real consortium sees. ``Workload.drain`` stops submitting
and keeps reading until every accepted tx was found in a block or the time is
up. Nothing here reads the wall clock for decisions except pacing.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from node.core.tx import build_tx
from tests.chaos.history import IN_CHAIN, HistoryWriter, Op
from tests.support.ports import HOST

REQUEST_TIMEOUT_S = 5.0
REREAD_S = 0.5  # an unconfirmed tx is read again at most this often
GIVE_UP_S = 120.0  # ... and no more once this long unconfirmed (its node lost it, say)
CONFIRM_READS = 0.2  # share of reads that re-read a tx already found in a block


@dataclass
class _Answer:
    code: int
    body: Any


class _Failed(Exception):
    """No answer: ``certain`` if the request surely never reached the node."""

    def __init__(self, error: str, certain: bool) -> None:
        super().__init__(error)
        self.error = error
        self.certain = certain


def _request(port: int, method: str, path: str, body: bytes | None) -> _Answer:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except ConnectionRefusedError:
        raise _Failed("refused", certain=True) from None
    except TimeoutError:
        raise _Failed("timeout", certain=False) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Failed(type(exc).__name__, certain=False) from None
    finally:
        conn.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return _Answer(resp.status, parsed)


def _error_code(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            return str(err["code"])
        if isinstance(err, str):
            return err
    return "unexpected answer"


@dataclass
class _Tracked:
    tx: str
    since: float
    last_read: float = 0.0


@dataclass
class ClientStats:
    submitted: int = 0
    accepted: int = 0
    reads: int = 0
    confirmed: int = 0


@dataclass
class Client:
    """One workload process (module docstring); ``run`` is its thread's body."""

    client_id: int
    history: HistoryWriter
    api_ports: Sequence[int]
    chain_id: str
    key: nacl.signing.SigningKey
    rate: float
    seed: int
    submitting: threading.Event
    halt: threading.Event
    clock: Callable[[], float] = time.monotonic
    stats: ClientStats = field(default_factory=ClientStats)
    unconfirmed: deque[_Tracked] = field(default_factory=deque)
    confirmed: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # unconfirmed for GIVE_UP_S

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._nonce = itertools.count(secrets.randbits(40))

    def _node(self) -> int:
        return self._rng.randrange(len(self.api_ports))

    def submit(self) -> None:
        node = self._node()
        body = {"digest": secrets.token_hex(32), "kind": "chaos"}
        tx = build_tx(self.chain_id, "data.anchor", body, self.key, next(self._nonce))
        inv = self.history.invoke(self.client_id, "submit", tx.hash, node)
        self.stats.submitted += 1
        try:
            answer = _request(self.api_ports[node], "POST", "/v1/txs", tx.wire)
        except _Failed as exc:
            self.history.complete(inv, "fail" if exc.certain else "info", error=exc.error)
            if not exc.certain:
                self.unconfirmed.append(_Tracked(tx.hash, self.clock()))  # it may be in
            return
        if answer.code == 202:
            self.history.complete(inv, "ok", status="accepted", code=202)
            self.stats.accepted += 1
            self.unconfirmed.append(_Tracked(tx.hash, self.clock()))
        elif 400 <= answer.code < 500 or answer.code == 503:
            self.history.complete(inv, "fail", code=answer.code, error=_error_code(answer.body))
        else:  # a 5xx: the node may have admitted it before failing
            self.history.complete(inv, "info", code=answer.code, error=_error_code(answer.body))
            self.unconfirmed.append(_Tracked(tx.hash, self.clock()))

    def read(self, tx: str) -> Op | None:
        """One status read of ``tx`` on a random node; the completion, or None if none came."""
        node = self._node()
        inv = self.history.invoke(self.client_id, "status", tx, node)
        self.stats.reads += 1
        try:
            answer = _request(self.api_ports[node], "GET", f"/v1/txs/{tx}", None)
        except _Failed as exc:
            self.history.complete(inv, "fail" if exc.certain else "info", error=exc.error)
            return None
        body = answer.body
        if answer.code != 200 or not isinstance(body, dict):
            self.history.complete(inv, "fail", code=answer.code, error=_error_code(body))
            return None
        return self.history.complete(
            inv,
            "ok",
            status=body.get("status"),
            height=body.get("height"),
            index=body.get("index"),
            code=200,
        )

    def read_some(self) -> bool:
        """One read, if one is due; whether it read."""
        now = self.clock()
        if self.confirmed and self._rng.random() < CONFIRM_READS:
            self.read(self._rng.choice(self.confirmed))
            return True
        if not self.unconfirmed or now - self.unconfirmed[0].last_read < REREAD_S:
            return False
        tracked = self.unconfirmed.popleft()
        tracked.last_read = now
        done = self.read(tracked.tx)
        if done is not None and done.status in IN_CHAIN:
            self.confirmed.append(tracked.tx)
            self.stats.confirmed += 1
        elif now - tracked.since < GIVE_UP_S:
            self.unconfirmed.append(tracked)
        else:
            self.abandoned.append(tracked.tx)
        return True

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_submit = self.clock() + self._rng.uniform(0, interval)
        while not self.halt.is_set():
            now = self.clock()
            if self.submitting.is_set() and now >= next_submit:
                self.submit()
                next_submit = max(next_submit + interval, now - interval)
                continue
            if not self.read_some():
                self.halt.wait(0.05)


class Workload:
    """``clients`` client threads on one history (module docstring)."""

    def __init__(
        self,
        history: HistoryWriter,
        api_ports: Sequence[int],
        chain_id: str,
        keys: Sequence[nacl.signing.SigningKey],
        *,
        clients: int = 4,
        rate: float = 4.0,
        seed: int = 0,
    ) -> None:
        self.submitting = threading.Event()
        self.halt = threading.Event()
        self.clients = [
            Client(
                client_id=c,
                history=history,
                api_ports=api_ports,
                chain_id=chain_id,
                key=keys[c % len(keys)],
                rate=rate,
                seed=seed * 1000 + c,
                submitting=self.submitting,
                halt=self.halt,
            )
            for c in range(clients)
        ]
        self._threads = [
            threading.Thread(target=c.run, name=f"chaos-client-{c.client_id}", daemon=True)
            for c in self.clients
        ]

    def start(self) -> None:
        self.submitting.set()
        for t in self._threads:
            t.start()

    def unconfirmed(self) -> int:
        return sum(len(c.unconfirmed) for c in self.clients)

    def drain(self, timeout: float) -> int:
        """Stop submitting; read on until every tx is found in a block or ``timeout``
        passes; stop the clients. Returns how many were never found."""
        self.submitting.clear()
        deadline = time.monotonic() + timeout
        while self.unconfirmed() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stop()
        return self.unconfirmed()

    def stop(self) -> None:
        self.submitting.clear()
        self.halt.set()
        for t in self._threads:
            t.join(timeout=2 * REQUEST_TIMEOUT_S + 5)

    def stats(self) -> dict[str, int]:
        total = ClientStats()
        for c in self.clients:
            total.submitted += c.stats.submitted
            total.accepted += c.stats.accepted
            total.reads += c.stats.reads
            total.confirmed += c.stats.confirmed
        return {
            "submitted": total.submitted,
            "accepted": total.accepted,
            "reads": total.reads,
            "confirmed": total.confirmed,
        }
