"""A bounded, thread-safe memory an adapter keeps between requests of one process.

Adapters remember a little between a read and the write that follows it (Jira's
transitions and edit screen of a fetched issue) and what a platform refused (so the same
request is not resent until the ticket changes). Workers run for weeks and see every
ticket of a site, so each such memory keeps only the most recently used entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_SIZE = 1024


class BoundedMemory(Generic[K, V]):
    """A least-recently-stored map of at most `size` entries."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def pop(self, key: K) -> V | None:
        """Take an entry out: what is used at most once (a fetch's screen, read by its apply)."""
        with self._lock:
            return self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries
