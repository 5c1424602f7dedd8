"""SM2/SM3 primitives behind a `Signer` interface, encrypted key storage, X.509 SM2 certificates,
the CA hierarchy (provincial root → municipal branch → seal certificates), CRL and OCSP.

    signer      the `Signer` interface: what every package outside `keys` gets instead of a key
    datakeys    the key hierarchy below the KEK: data-encryption keys by purpose and version, rotated;
                SM4-GCM and HMAC-SM3 with them
    keystore    key stores (encrypted at rest): a `Signer` by label, never key bytes
    aead        SM4-GCM for values at rest, HMAC-SM3
    sm2         SM2 signatures with SM3 on OpenSSL's libcrypto; `sm3`
    x509        X.509 v3 certificates and PKCS#10 requests with SM2 keys (GM/T 0015)
    ca          the CA hierarchy: provincial root → municipal branch → department seal certificates
    crl         X.509 v2 CRLs (RFC 5280 §5) signed with SM2-with-SM3
    ocsp        OCSP responses (RFC 6960) signed with SM2-with-SM3
    oids        the SM suite's object identifiers, taught to asn1crypto on import
    uscc        unified social credit codes (GB 32100-2015)
    errors      the one exception tree (KeysError)

Internal: _openssl (the cffi binding to libcrypto), armor (PEM/DER reading), pkcs8 (keys at rest,
PBES2 with SM4-CBC).
Each public module's `__all__` is its surface; tests/test_public_surface.py pins both lists.

Only this package touches private-key material. It imports nothing else from the project and no
web or database framework.
"""

# Importing keys.oids teaches asn1crypto the SM names pyHanko needs (the one place that changes a
# library's tables: see keys/oids.py), before any module of ours or pyHanko's uses them.
from keys import oids

# The modules other packages may import (the rest are internal to keys).
__all__ = ["aead", "ca", "crl", "datakeys", "errors", "keystore", "ocsp", "oids", "signer", "sm2", "uscc", "x509"]
