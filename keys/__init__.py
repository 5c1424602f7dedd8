"""SM2/SM3 primitives behind a `Signer` interface, encrypted key storage, X.509 SM2 certificates,
the CA hierarchy (provincial root → municipal branch → seal certificates), CRL and OCSP.

Only this package touches private-key material. It imports nothing else from the project and no
web or database framework.
"""

# Importing keys.oids teaches asn1crypto the SM names pyHanko needs (the one place that changes a
# library's tables: see keys/oids.py), before any module of ours or pyHanko's uses them.
from keys import oids  # noqa: F401
