"""A small, separate verifier of Merkle inclusion and consistency proofs, written for the tests from
the definitions of RFC 9162 §2.1 (MTH, PATH and PROOF), not from the production code (which walks
the proof with the bit operations of §2.1.3.2 and §2.1.4.2): here the root is rebuilt by the same
recursion that defines the proof, so the two can only agree if both follow the RFC."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

Digest = Callable[[bytes], bytes]


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(digest: Digest, leaf: bytes) -> bytes:
    return digest(b"\x00" + leaf)


def _node(digest: Digest, left: bytes, right: bytes) -> bytes:
    return digest(b"\x01" + left + right)


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(digest: Digest, leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as §2.1.1 defines it (recursively, on the leaf data)."""
    if not leaves:
        return digest(b"")
    if len(leaves) == 1:
        return leaf_hash(digest, leaves[0])
    k = _k(len(leaves))
    return _node(digest, mth(digest, leaves[:k]), mth(digest, leaves[k:]))


def root_from_inclusion(digest: Digest, index: int, size: int, hashed_leaf: bytes, path: list[bytes]) -> bytes | None:
    """§2.1.3.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, else
    PATH(m - k, D[k:n]) : MTH(D[0:k]); the last element is the sibling at the top."""
    if size == 1:
        return hashed_leaf if not path else None
    if not path:
        return None
    k, sibling = _k(size), path[-1]
    if index < k:
        inner = root_from_inclusion(digest, index, k, hashed_leaf, path[:-1])
        return None if inner is None else _node(digest, inner, sibling)
    inner = root_from_inclusion(digest, index - k, size - k, hashed_leaf, path[:-1])
    return None if inner is None else _node(digest, sibling, inner)


def inclusion_holds(digest: Digest, index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    if not 0 <= index < size:
        return False
    return root_from_inclusion(digest, index, size, leaf_hash(digest, leaf), path) == root


def consistency_holds(
    digest: Digest, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """§2.1.4.1's SUBPROOF run backwards: rebuild (old root, new root) from the proof."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size:
        return False
    rest = list(proof)

    def rebuild(m: int, n: int, whole: bool) -> tuple[bytes | None, bytes] | None:
        """(MTH of the first m leaves of this subtree, or None where the old tree does not end in
        it, MTH of the subtree) from the end of the proof."""
        if m == n:
            if whole:
                return old_root, old_root
            if not rest:
                return None
            h = rest.pop(0)
            return h, h
        if not rest:
            return None
        k = _k(n)
        if m <= k:
            right = rest.pop()
            inner = rebuild(m, k, whole)
            if inner is None:
                return None
            return inner[0], _node(digest, inner[1], right)
        left = rest.pop()
        inner = rebuild(m - k, n - k, False)
        if inner is None or inner[0] is None:
            return None
        return _node(digest, left, inner[0]), _node(digest, left, inner[1])

    rebuilt = rebuild(old_size, new_size, True)
    return rebuilt is not None and not rest and rebuilt == (old_root, new_root)
