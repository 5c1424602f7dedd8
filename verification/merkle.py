"""Merkle tree hashing and proofs as RFC 9162 §2.1 defines them, with the hash as a parameter.

ECAS's transparency log uses SM3 (`SM3_TREE`); RFC 9162 / RFC 6962 use SHA-256 (`SHA256_TREE`),
which the tests use to check the algorithms against the RFC's known vectors.

    leaf hash  = H(0x00 || leaf)
    node hash  = H(0x01 || left || right)
    MTH(D[n])  = H() for n = 0; the leaf hash for n = 1; else node(MTH(D[0:k]), MTH(D[k:n]))
                 with k the largest power of two smaller than n.

Proofs are made from a `node` oracle: `node(level, index)` is the hash of the perfect subtree of
2**level leaves starting at leaf index * 2**level (level 0: the leaf hashes). A store keeps such
nodes (tiles, in ECAS); any subtree of the RFC's recursion splits into perfect ones.
Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "SHA256_TREE",
    "SM3_TREE",
    "NodeReader",
    "TreeHasher",
    "consistency_proof",
    "inclusion_proof",
    "root_hash",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

NodeReader = Callable[[int, int], bytes]  # (level, index) -> hash of that perfect subtree


@dataclass(frozen=True)
class TreeHasher:
    name: str
    digest: Callable[[bytes], bytes]

    def empty(self) -> bytes:
        return self.digest(b"")

    def leaf(self, data: bytes) -> bytes:
        return self.digest(b"\x00" + data)

    def node(self, left: bytes, right: bytes) -> bytes:
        return self.digest(b"\x01" + left + right)

    def root(self, leaf_hashes: Sequence[bytes]) -> bytes:
        """MTH of the leaves whose hashes are given (every level at once, not recursively)."""
        if not leaf_hashes:
            return self.empty()
        level = list(leaf_hashes)
        while len(level) > 1:
            # Pairing left to right and carrying an odd last node up is the same tree as the RFC's
            # split at the largest power of two: the left part is always perfect.
            paired = [self.node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            level = paired
        return level[0]


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


SM3_TREE = TreeHasher("SM3", _sm3)
SHA256_TREE = TreeHasher("SHA-256", _sha256)


def _split(size: int) -> int:
    """The largest power of two smaller than size (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def subtree_hash(hasher: TreeHasher, node: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from perfect-subtree nodes: start is a multiple of the largest power of two
    not above end - start, as every subtree of the RFC's recursion is."""
    size = end - start
    if size & (size - 1) == 0:  # perfect
        level = size.bit_length() - 1
        return node(level, start >> level)
    k = _split(size)
    return hasher.node(node(k.bit_length() - 1, start // k), subtree_hash(hasher, node, start + k, end))


def root_hash(hasher: TreeHasher, node: NodeReader, size: int) -> bytes:
    return hasher.empty() if size == 0 else subtree_hash(hasher, node, 0, size)


def inclusion_proof(hasher: TreeHasher, node: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(hasher, node, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(hasher, node, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(hasher: TreeHasher, node: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                proof.append(subtree_hash(hasher, node, start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            proof.append(subtree_hash(hasher, node, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_hash(hasher, node, start, start + k))

    subproof(old_size, 0, new_size, True)
    return proof


def verify_inclusion(
    hasher: TreeHasher, index: int, size: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hasher.node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hasher.node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    hasher: TreeHasher, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 (and equal sizes: equal roots, an empty proof)."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hasher.node(c, fr)
            sr = hasher.node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hasher.node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
