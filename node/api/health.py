"""Why ``GET /health`` answers 503: ``health_reasons``, a pure function of the node's state.

The daemon gathers the inputs (``node.daemon.Node.health``); the admin API
answers 200 ``{"ok": true, "reasons": []}`` when the list is empty and 503 with
the reasons otherwise (docs/operator.md, "Monitor").
"""

from __future__ import annotations

from typing import Final

# transactions waiting this long without a committed block: "height stalled"
STALL_HEALTH_MS: Final = 30_000


def health_reasons(
    *,
    failed: BaseException | None,
    validators: int,
    peers: int,
    syncing: bool,
    pending_txs: int,
    since_commit_ms: int,
    disk_free_bytes: int,
    min_free_disk_mib: int,
    storage: str | None,
) -> list[str]:
    """Why ``GET /health`` answers 503 (empty: healthy).

    - ``consensus stopped: ...``: the driver hit a bug or storage it cannot trust;
    - ``storage``, as given: a write to the data directory failed and the node
      writes, votes and commits nothing until a retry succeeds
      (``node.engine.storage_fault.StorageFault.reason``: ``storage write failed
      (disk full) ...``);
    - ``no peers``: not a single link, in a consortium of more than one validator;
    - ``syncing``: catching up by block sync;
    - ``height stalled for S s``: transactions wait and no block was committed for
      ``STALL_HEALTH_MS`` (an idle chain with an empty mempool is healthy);
    - ``disk low: M MiB free``: the data directory's filesystem has less than
      ``[admin] health_min_free_disk_mib`` free (0 turns the check off).
    """
    reasons: list[str] = []
    if failed is not None:
        reasons.append(f"consensus stopped: {failed}")
    if storage is not None:
        reasons.append(storage)
    if validators > 1 and peers == 0:
        reasons.append("no peers")
    if syncing:
        reasons.append("syncing")
    if pending_txs and since_commit_ms > STALL_HEALTH_MS:
        reasons.append(f"height stalled for {since_commit_ms // 1000} s")
    if disk_free_bytes < min_free_disk_mib << 20:
        reasons.append(f"disk low: {disk_free_bytes >> 20} MiB free")
    return reasons
