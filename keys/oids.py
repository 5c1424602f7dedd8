"""Object identifiers of the Chinese commercial cryptography suite, and the one place that teaches
them to asn1crypto.

Why asn1crypto has to know them by name: pyHanko (which we use to seal and read PDFs) names digest
algorithms as asn1crypto does and finds the hash with getattr(cryptography.hazmat.primitives.hashes,
name.upper()) (pyhanko_certvalidator.util.get_pyca_cryptography_hash): SM3 must be "sm3" in
asn1crypto's DigestAlgorithmId for pyHanko to digest a /ByteRange with SM3 or to write and read a
CMS that names SM3. Our own code reads algorithms by their dotted OIDs and does not need names.

What importing this module changes in asn1crypto, for the whole process, and nothing else:

- NamedCurve: sm2p256v1 = 1.2.156.10197.1.301, through asn1crypto's public `NamedCurve.register`;
- DigestAlgorithmId: sm3 = 1.2.156.10197.1.401;
- SignedDigestAlgorithmId: sm2_sm3 = 1.2.156.10197.1.501, sm2 = 1.2.156.10197.1.301.1.

asn1crypto has no public way to name an OID in an ObjectIdentifier class: the last two are added
to the class's `_map` (OID → name) and, once asn1crypto has built it, `_reverse_map` (name → OID).
Entries are only ever added: if asn1crypto already maps one of these OIDs or names to something
else (a later release that knows the SM suite under other names), importing fails rather than
overriding it, and someone must look. Adding is idempotent. tests/keys/test_oids.py is the canary
for everything relied on here; pyproject.toml bounds the asn1crypto version it was checked with.
"""

from __future__ import annotations

from asn1crypto import algos, core, keys

__all__ = ["SM2_SIGN", "SM2_WITH_SM3", "SM2_WITH_SM3_NAME", "SM3", "SM3_NAME"]

# GM/T 0006 / GB/T 33560
SM2_CURVE = "1.2.156.10197.1.301"
SM2_SIGN = "1.2.156.10197.1.301.1"
SM3 = "1.2.156.10197.1.401"
SM2_WITH_SM3 = "1.2.156.10197.1.501"
# GM/T 0015: identity extension for the organisation code; real CAs put the USCC, which
# supersedes the organisation code, in it. GM/T 0015-2023's dedicated USCC OID is not settled
# across vendors (SPEC.md), so we write the widely read one.
GMT0015_ORG_CODE = "1.2.156.10260.4.1.4"

SM2_CURVE_NAME = "sm2p256v1"
SM3_NAME = "sm3"
SM2_WITH_SM3_NAME = "sm2_sm3"
SM2_SIGN_NAME = "sm2"
SM2_CURVE_KEY_SIZE = 32  # bytes of a private key

# Every name this module gives asn1crypto: (class, OID, name).
ASN1CRYPTO_NAMES: tuple[tuple[type[core.ObjectIdentifier], str, str], ...] = (
    (keys.NamedCurve, SM2_CURVE, SM2_CURVE_NAME),
    (algos.DigestAlgorithmId, SM3, SM3_NAME),
    (algos.SignedDigestAlgorithmId, SM2_WITH_SM3, SM2_WITH_SM3_NAME),
    (algos.SignedDigestAlgorithmId, SM2_SIGN, SM2_SIGN_NAME),
)


class Asn1cryptoConflictError(RuntimeError):
    """asn1crypto already names one of our OIDs (or uses one of our names) otherwise."""


def register_with_asn1crypto() -> None:
    """Teach asn1crypto the SM names above (see the module's docstring). Idempotent; runs when
    this module is first imported, so importing anything from `keys` is enough."""
    for cls, dotted, name in ASN1CRYPTO_NAMES:
        _check_free(cls, dotted, name)
        if cls is keys.NamedCurve:
            if dotted not in cls._map:
                keys.NamedCurve.register(name, dotted, SM2_CURVE_KEY_SIZE)
            continue
        cls._map[dotted] = name
        reverse = getattr(cls, "_reverse_map", None)
        if reverse is not None:
            reverse[name] = dotted


def _check_free(cls: type[core.ObjectIdentifier], dotted: str, name: str) -> None:
    mapping: dict[str, str] = cls._map
    if mapping.get(dotted, name) != name:
        raise Asn1cryptoConflictError(f"asn1crypto names {dotted} {mapping[dotted]!r} in {cls.__name__}, not {name!r}")
    others = [oid for oid, known in mapping.items() if known == name and oid != dotted]
    if others:
        raise Asn1cryptoConflictError(f"asn1crypto uses the name {name!r} for {others[0]} in {cls.__name__}")


register_with_asn1crypto()
