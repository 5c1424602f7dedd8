"""Remembered verdicts: the expensive, deterministic parts of a verification kept per process for a
short while, under a key that holds every input they depend on.

A verification repeats work whose outcome only changes when its inputs change: parsing a sealed
file and checking its SM2 signatures, timestamps, chain and revocation (inputs: the file's bytes
and the trust anchors, i.e. root, branch CA certificate and the current CRL), and opening the
record's sealed personal data (input: the record row as stored). So the key of a remembered part
is those inputs themselves (the anchors' bytes, the file's SM3, the stored row's columns), read
afresh on every request: a revocation, a change, an edited row or a new CRL is a different key,
never a stale VALID. The stored files are still checked intact on every request (a packed file's
manifest read and checked, and rebuilt whole when this process has not rebuilt that manifest: a
damaged or replaced file is caught at once), and so is the record-against-OFD binding (its
comparison remembered by issuing.binding per record content). The transparency-log check is keyed
on the stored row and the log's state for the licence, read with the row (its entries: how many,
how many revocations or cancellations, how many sequenced, the newest; the latest head, every
column): an event logged for the licence, a leaf refiled under another identifier or event, a new
head or an edited head is a new key, and a check is kept under the state it read itself (the log
may change between the two reads). A leaf or tile edited in place is in no key: it is found when
the lifetime ends. The lifetime otherwise only bounds memory and anything missed here.

Only VALID parts are kept: a failure is cheap to find again, and "could not check" must not stick.
Per process and in memory: several workers each keep their own, all keyed on the shared database.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

LIFETIME = 60.0  # seconds a remembered part is used before it is worked out again
KEPT = 4096  # entries per cache: the least recently used go first

V = TypeVar("V")


class Remembered(Generic[V]):
    """A thread-safe LRU map with a lifetime per entry (monotonic clock, passed in for tests)."""

    def __init__(
        self, lifetime: float = LIFETIME, kept: int = KEPT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self.kept = kept
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            until, value = found
            if self.clock() >= until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = (self.clock() + self.lifetime, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
