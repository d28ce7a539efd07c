"""A block's results root: a Merkle tree of its transactions' results.

Each transaction of a block, in block order, is one leaf (RFC 6962 hashing,
``consensus/merkle.py``)::

    leaf(i) = tx hash (64 hex) || ":" || canonical JSON of
              {"status", "code", "message", "data", "height", "index"}

the JSON being the result record the state keeps under ``txr/<hash>``
(``node/core/state_root.py``). A replayed transaction (its hash committed before)
has a leaf too, with the replay rejection, though the state keeps only its
first result. The root enters the block's state root (``chain_state_root`` in
``node/core/state_root.py``), which checkpoints certify: a proof of outcome
(``node/core/outcome_proof.py``) shows one leaf, its path and the digests that
lead from the block to a certified checkpoint.
"""

from __future__ import annotations

from typing import Any, Final

from node.core.state_root import result_leaf, results_root
from node.ledger.result import Rejection, TxResult

__all__ = [
    "REPLAY",
    "result_leaf",
    "result_record",
    "results_root",
]

# the result of a transaction whose hash was committed before (or earlier in its block)
REPLAY: Final = TxResult.rejected(Rejection("replay", "transaction already committed"))


def result_record(result: TxResult, height: int, index: int) -> dict[str, Any]:
    """What the state keeps under ``txr/<hash>``: the result, where it was decided."""
    return {**result.to_json(), "height": height, "index": index}
