"""LevelDB (plyvel) persistence for a Hygeia node: blocks, indexes, app state
and consensus records, bytes in and bytes out.

- ``storage.db``: ``open_database`` (opens an existing database, creates one only
  when asked; schema, genesis, lock and corruption errors) and ``Database``
  (typed namespaces, atomic batches, snapshots);
- ``storage.marker``: the ``HYGEIA`` marker of a data directory and the checks
  made before LevelDB touches it (a missing ``CURRENT``, another genesis);
- ``storage.chain``: ``ChainStore``, the node's store on LevelDB (``reopen``:
  writing again after a failed write);
- ``storage.room``: whether the data directory's filesystem has room again
  (``probe_room``) after a write failed for lack of it;
- ``storage.memory``: ``MemoryChainStore``, the same in dicts;
- ``storage.base``: the ``ChainView``/``ChainStorage`` protocols both satisfy;
- ``storage.layout``: namespaces, encodings and ``SCHEMA_VERSION``.

``storage`` imports nothing from ``node`` or ``consensus``.
"""

from storage.base import ChainStorage, ChainView, Write
from storage.chain import ChainStore
from storage.db import Database, open_database
from storage.errors import StorageError, StorageWriteError
from storage.layout import SCHEMA_VERSION
from storage.marker import DatabaseInUseError, GenesisMismatchError
from storage.memory import MemoryChainStore

__all__ = [
    "SCHEMA_VERSION",
    "ChainStorage",
    "ChainStore",
    "ChainView",
    "Database",
    "DatabaseInUseError",
    "GenesisMismatchError",
    "MemoryChainStore",
    "StorageError",
    "StorageWriteError",
    "Write",
    "open_database",
]
