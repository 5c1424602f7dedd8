"""Encodings kept per shape (seals.der_shapes): filled in where the values stood, never kept when a
value's place is ambiguous, the least recently used dropped."""

from __future__ import annotations

from asn1crypto import core

from seals.der_shapes import EncodingCache


def _encode(cache: EncodingCache, first: bytes, second: bytes) -> bytes:
    def build() -> bytes:
        return core.Sequence(
            contents=core.OctetString(first).dump() + b"\x05\x00" + core.OctetString(second).dump()
        ).dump()

    return cache.encode(("pair", len(first), len(second)), (first, second), build)


def test_later_encodings_fill_in_the_values() -> None:
    cache = EncodingCache()
    builds: list[bytes] = []

    def build(der: bytes) -> bytes:
        builds.append(der)
        return der

    assert cache.encode("k", (b"AAAA", b"BB"), lambda: build(b"\x30\x08\x04\x04AAAA\x04\x02BB")) == (
        b"\x30\x08\x04\x04AAAA\x04\x02BB"
    )
    assert cache.encode("k", (b"CCCC", b"DD"), lambda: build(b"not used")) == b"\x30\x08\x04\x04CCCC\x04\x02DD"
    assert builds == [b"\x30\x08\x04\x04AAAA\x04\x02BB"]
    assert cache.constant_prefix("k") == b"\x30\x08\x04\x04"
    for first, second in ((b"\x00\x01\x02", b"xyz1"), (b"\xff" * 3, b"\x04\x02zz")):
        expected = core.OctetString(first).dump() + b"\x05\x00" + core.OctetString(second).dump()
        assert _encode(cache, first, second) == core.Sequence(contents=expected).dump()


def test_a_value_that_stands_twice_is_not_kept() -> None:
    cache = EncodingCache()
    assert _encode(cache, b"\x05\x00", b"zz") is not None  # "\x05\x00" also stands between them
    assert cache.constant_prefix(("pair", 2, 2)) is None
    assert (
        _encode(cache, b"ab", b"cd")
        == core.Sequence(contents=core.OctetString(b"ab").dump() + b"\x05\x00" + core.OctetString(b"cd").dump()).dump()
    )


def test_least_recently_used_is_dropped() -> None:
    cache = EncodingCache(size=2)
    for key in ("a", "b"):
        cache.encode(key, (b"v" + key.encode(),), lambda key=key: b"[v" + key.encode() + b"]")
    assert cache.constant_prefix("a") == b"["  # "a" used last now
    cache.encode("c", (b"vc",), lambda: b"[vc]")
    assert cache.constant_prefix("b") is None
    assert cache.constant_prefix("a") == b"[" and cache.constant_prefix("c") == b"["
