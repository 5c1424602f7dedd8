"""SM2/SM3 primitives behind a `Signer` interface, encrypted key storage, X.509 SM2 certificates,
the CA hierarchy (provincial root → municipal branch → seal certificates), CRL and OCSP.

Only this package touches private-key material. It imports nothing else from the project and no
web or database framework.
"""

from keys.oids import register_with_asn1crypto

register_with_asn1crypto()
