"""LevelDB (plyvel) persistence for a Hygeia node: blocks, indexes, app state
and consensus records, bytes in and bytes out.

- ``storage.db``: ``open_database`` (schema check, lock and corruption errors)
  and ``Database`` (typed namespaces, atomic batches, snapshots);
- ``storage.chain``: ``ChainStore``, the node's store on LevelDB;
- ``storage.memory``: ``MemoryChainStore``, the same in dicts;
- ``storage.base``: the ``ChainView``/``ChainStorage`` protocols both satisfy;
- ``storage.layout``: namespaces, encodings and ``SCHEMA_VERSION``.

``storage`` imports nothing from ``node`` or ``consensus``.
"""

from storage.base import ChainStorage, ChainView, Write
from storage.chain import ChainStore
from storage.db import Database, open_database
from storage.errors import StorageError
from storage.layout import SCHEMA_VERSION
from storage.memory import MemoryChainStore

__all__ = [
    "SCHEMA_VERSION",
    "ChainStorage",
    "ChainStore",
    "ChainView",
    "Database",
    "MemoryChainStore",
    "StorageError",
    "Write",
    "open_database",
]
