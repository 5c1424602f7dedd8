"""asn1crypto's encodings kept per shape, for the structures issuance writes for every licence.

asn1crypto spends 0.05–0.1 ms on each of the structures a sealed licence carries (the CMS signed
attributes and SignedData, TBS_Sign, SES_Signature), 0.3 ms a licence together (6 % of it,
measured with `ecas bench issue`). Yet for one signer and seal, such an encoding depends on what
changes per licence (a digest, the signing time, a signature) only at the places where it stands,
and on its length. So the first encoding of a shape is asn1crypto's, and the next ones are that
encoding with their own values put in those places (`EncodingCache.encode`).

A key names the shape: everything the encoding depends on but the values, and the values' lengths.
Values are given as they stand in the encoding (an OCTET STRING's content, a time's whole TLV). If
a value stands at more than one place (say, a signing time equal to a time in the seal), the
shape is not kept and asn1crypto encodes the next one afresh. The tests compare kept shapes with
asn1crypto's own encodings on generated values (tests/seals/test_signed_data.py, test_ses.py).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# Shapes kept per process: each signer has a handful (time kinds, signature lengths), and a seal's
# TBS_Sign and SES_Signature carry the seal (some 40 KB), so a few hundred stay within ~10 MB.
MAX_SHAPES = 256


@dataclass(frozen=True)
class _Shape:
    """One encoding, and where the values stand in it: (start, length, which value), in order."""

    der: bytes
    slots: tuple[tuple[int, int, int], ...]

    @classmethod
    def find(cls, der: bytes, values: tuple[bytes, ...]) -> _Shape | None:
        """The places of `values` in `der`, or None unless each stands there exactly once."""
        slots = []
        for index, value in enumerate(values):
            start = der.find(value)
            if not value or start < 0 or der.find(value, start + 1) >= 0:
                return None
            slots.append((start, len(value), index))
        slots.sort()
        if any(start + length > next_start for (start, length, _), (next_start, _, _) in itertools.pairwise(slots)):
            return None
        return cls(der, tuple(slots))

    def fill(self, values: tuple[bytes, ...]) -> bytes:
        out: list[bytes] = []
        at = 0
        for start, length, index in self.slots:
            value = values[index]
            if len(value) != length:
                raise ValueError("a value of another length than the shape's: the key must name lengths")
            out += (self.der[at:start], value)
            at = start + length
        out.append(self.der[at:])
        return b"".join(out)

    @property
    def constant_prefix(self) -> bytes:
        """What every encoding of this shape starts with: up to the first value."""
        return self.der[: self.slots[0][0]]


class EncodingCache:
    """Encodings by shape, the least recently used dropped beyond `size`; safe across threads
    (each process keeps its own: nothing here is shared between workers)."""

    def __init__(self, size: int = MAX_SHAPES) -> None:
        self._shapes: OrderedDict[Hashable, _Shape] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def encode(self, key: Hashable, values: tuple[bytes, ...], build: Callable[[], bytes]) -> bytes:
        """`build()` (asn1crypto's encoding with these values), or the kept shape of `key` with them."""
        shape = self._get(key)
        if shape is not None:
            return shape.fill(values)
        der = build()
        found = _Shape.find(der, values)
        if found is not None:
            with self._lock:
                self._shapes[key] = found
                while len(self._shapes) > self._size:
                    self._shapes.popitem(last=False)
        return der

    def constant_prefix(self, key: Hashable) -> bytes | None:
        """The start every encoding of a kept shape shares (None if the shape is not kept)."""
        shape = self._get(key)
        return shape.constant_prefix if shape is not None else None

    def _get(self, key: Hashable) -> _Shape | None:
        with self._lock:
            shape = self._shapes.get(key)
            if shape is not None:
                self._shapes.move_to_end(key)
            return shape


SHAPES = EncodingCache()
