"""The issuance transparency log (issue 22, part 3): every licence event as a leaf of an
append-only SM3 Merkle tree, signed tree heads, proofs and tiles (`log`, `tiles`). The leaf and
head formats and the proof algorithms are plain library code in `verification.transparency` and
`verification.merkle`, so an offline verifier needs nothing of this room."""
