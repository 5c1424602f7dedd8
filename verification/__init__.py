"""verification: checking sealed files, certificate chains, revocation and show tokens (see
../shared/DESIGN.md). Plain library: results are values (`report`), not exceptions.

    sealed_file   `verify_sealed_file`: a sealed PDF or OFD checked by itself and against trust anchors
    ofd_file      inspecting a sealed OFD: every signature, part check values, SES_Signature
    eseal         an e-seal (SES_Seal) checked on its own: maker signature and maker chain
    timestamp     a time-stamp token over a signature: its imprint, TSA signature and certificate
    trust         trust anchors: chain at signing time and revocation from the branch CA's CRL
    trust_bundle  reading a trust bundle offline, checked against the pinned root and USCC
    show_token    show tokens (亮证码): short-lived, SM2-signed, for a QR on the holder's phone
    merkle        RFC 9162 Merkle trees (SM3 or SHA-256): roots, inclusion and consistency proofs
    transparency  the transparency log's leaf and signed tree head formats
    report        results as values: Status (INDETERMINATE kept apart), Check, Report

Internal: evidence (what a file proves by itself), pdf_file (inspecting a sealed PDF).
Each public module's `__all__` is its surface; tests/test_public_surface.py pins both lists.
"""

# The modules other packages may import (the rest are internal to verification).
__all__ = [
    "eseal",
    "merkle",
    "ofd_file",
    "report",
    "sealed_file",
    "show_token",
    "timestamp",
    "transparency",
    "trust",
    "trust_bundle",
]
