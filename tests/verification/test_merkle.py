"""verification.merkle against RFC 6962/9162's known vectors (SHA-256 swapped in for SM3 through the
hasher parameter) and against a separate verifier written from the RFC (tests/verification/
rfc9162_verifier.py), for SHA-256 and SM3 and every tree up to 70 leaves."""

from __future__ import annotations

import pytest

from tests.verification import rfc9162_verifier as rfc
from verification.merkle import (
    SHA256_TREE,
    SM3_TREE,
    TreeHasher,
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# The certificate-transparency test corpus (RFC 6962 reference implementation, merkle tree tests).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def oracle(hasher: TreeHasher, leaves: list[bytes]):  # type: ignore[no-untyped-def]
    """node(level, index) straight from the leaves, as a store of perfect subtrees would answer."""
    hashes = [hasher.leaf(leaf) for leaf in leaves]

    def node(level: int, index: int) -> bytes:
        part = hashes[index << level : (index + 1) << level]
        assert len(part) == 1 << level, "asked for a node outside the tree"
        return hasher.root(part)

    return node


@pytest.mark.parametrize("size", range(9))
def test_roots_match_rfc6962_vectors(size: int) -> None:
    leaves = CT_LEAVES[:size]
    assert root_hash(SHA256_TREE, oracle(SHA256_TREE, leaves), size).hex() == CT_ROOTS[size]
    assert SHA256_TREE.root([SHA256_TREE.leaf(leaf) for leaf in leaves]).hex() == CT_ROOTS[size]
    assert rfc.mth(rfc.sha256, leaves).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
def test_inclusion_proofs_match_vectors(index: int, size: int) -> None:
    proof = inclusion_proof(SHA256_TREE, oracle(SHA256_TREE, CT_LEAVES), index, size)
    assert [h.hex() for h in proof] == CT_INCLUSION[(index, size)]
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(SHA256_TREE, index, size, SHA256_TREE.leaf(CT_LEAVES[index]), proof, root)
    assert rfc.inclusion_holds(rfc.sha256, index, size, CT_LEAVES[index], proof, root)


@pytest.mark.parametrize(("old", "new"), sorted(CT_CONSISTENCY))
def test_consistency_proofs_match_vectors(old: int, new: int) -> None:
    proof = consistency_proof(SHA256_TREE, oracle(SHA256_TREE, CT_LEAVES), old, new)
    assert [h.hex() for h in proof] == CT_CONSISTENCY[(old, new)]
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    assert verify_consistency(SHA256_TREE, old, new, old_root, new_root, proof)
    assert rfc.consistency_holds(rfc.sha256, old, new, old_root, new_root, proof)


@pytest.mark.parametrize(("hasher", "digest"), [(SHA256_TREE, rfc.sha256), (SM3_TREE, rfc.sm3)])
def test_every_proof_up_to_70_leaves_checks_with_the_separate_verifier(hasher: TreeHasher, digest: rfc.Digest) -> None:
    leaves = [f"leaf {n}".encode() for n in range(70)]
    node = oracle(hasher, leaves)
    for size in range(1, len(leaves) + 1):
        root = rfc.mth(digest, leaves[:size])
        assert root_hash(hasher, node, size) == root
        for index in range(size):
            proof = inclusion_proof(hasher, node, index, size)
            assert rfc.inclusion_holds(digest, index, size, leaves[index], proof, root)
            assert verify_inclusion(hasher, index, size, hasher.leaf(leaves[index]), proof, root)
        for old in range(1, size + 1):
            proof = consistency_proof(hasher, node, old, size)
            old_root = rfc.mth(digest, leaves[:old])
            assert rfc.consistency_holds(digest, old, size, old_root, root, proof)
            assert verify_consistency(hasher, old, size, old_root, root, proof)


def test_sm3_tree_is_sm3() -> None:
    """Leaf = SM3(0x00 || leaf), node = SM3(0x01 || l || r), checked with pure-Python gmssl's SM3."""
    from tests.conftest import gmssl_sm3

    leaf, other = b"licence event", b"another"
    assert SM3_TREE.leaf(leaf) == gmssl_sm3(b"\x00" + leaf)
    assert SM3_TREE.node(SM3_TREE.leaf(leaf), SM3_TREE.leaf(other)) == gmssl_sm3(
        b"\x01" + gmssl_sm3(b"\x00" + leaf) + gmssl_sm3(b"\x00" + other)
    )


def test_altered_proofs_fail_both_verifiers() -> None:
    leaves = [f"leaf {n}".encode() for n in range(13)]
    node = oracle(SM3_TREE, leaves)
    root = root_hash(SM3_TREE, node, 13)
    proof = inclusion_proof(SM3_TREE, node, 6, 13)
    leaf_hash = SM3_TREE.leaf(leaves[6])
    for position in range(len(proof)):
        for bit in (0, 255):
            bad = list(proof)
            bad[position] = bytes([proof[position][0] ^ (1 << (bit % 8))]) + proof[position][1:]
            assert not verify_inclusion(SM3_TREE, 6, 13, leaf_hash, bad, root)
            assert not rfc.inclusion_holds(rfc.sm3, 6, 13, leaves[6], bad, root)
    # Another index, a shorter or longer path, another leaf: all refused.
    assert not verify_inclusion(SM3_TREE, 7, 13, leaf_hash, proof, root)
    assert not verify_inclusion(SM3_TREE, 6, 13, leaf_hash, proof[:-1], root)
    assert not verify_inclusion(SM3_TREE, 6, 13, leaf_hash, [*proof, root], root)
    assert not verify_inclusion(SM3_TREE, 6, 13, SM3_TREE.leaf(b"forged"), proof, root)
    assert not rfc.inclusion_holds(rfc.sm3, 6, 13, b"forged", proof, root)
    old_root = root_hash(SM3_TREE, node, 5)
    consistency = consistency_proof(SM3_TREE, node, 5, 13)
    assert not verify_consistency(SM3_TREE, 5, 13, SM3_TREE.leaf(b"x"), root, consistency)
    assert not verify_consistency(SM3_TREE, 5, 13, old_root, root, consistency[:-1])
    assert not rfc.consistency_holds(rfc.sm3, 5, 13, old_root, root, consistency[:-1])
    assert not verify_consistency(SM3_TREE, 13, 5, root, old_root, consistency)
