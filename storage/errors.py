"""The one exception storage raises for conditions the node must stop on.

Every failure that means "the data directory cannot be trusted or used as it is"
(another process holds it, another schema version, corruption, a refused
write) is a ``StorageError`` whose message names the path and says what to do;
plyvel's own exceptions never leak out of ``storage``.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database cannot be opened, read or written as asked."""
