"""Object identifiers of the Chinese commercial cryptography suite, and their registration with
asn1crypto (which pyHanko also uses) so that SM2 keys, certificates, CRLs and CMS parse by name."""

from __future__ import annotations

from asn1crypto import algos, keys

# GM/T 0006 / GB/T 33560
SM2_CURVE = "1.2.156.10197.1.301"
SM2_SIGN = "1.2.156.10197.1.301.1"
SM3 = "1.2.156.10197.1.401"
SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM4 = "1.2.156.10197.1.104"
# GM/T 0015: identity extension for the organisation code; real CAs put the USCC, which
# supersedes the organisation code, in it. GM/T 0015-2023's dedicated USCC OID is not settled
# across vendors (SPEC.md), so we write the widely read one.
GMT0015_ORG_CODE = "1.2.156.10260.4.1.4"

SM2_CURVE_NAME = "sm2p256v1"
SM3_NAME = "sm3"
SM2_WITH_SM3_NAME = "sm2_sm3"


def _add(oid_class: type, dotted: str, name: str) -> None:
    oid_class._map[dotted] = name  # type: ignore[attr-defined]
    if getattr(oid_class, "_reverse_map", None) is not None:
        oid_class._reverse_map[name] = dotted  # type: ignore[attr-defined]


def register_with_asn1crypto() -> None:
    """Teach asn1crypto the SM OIDs. Idempotent; called when `keys` is imported."""
    if SM2_CURVE not in keys.NamedCurve._map:
        keys.NamedCurve.register(SM2_CURVE_NAME, SM2_CURVE, 32)
    _add(algos.DigestAlgorithmId, SM3, SM3_NAME)
    _add(algos.SignedDigestAlgorithmId, SM2_WITH_SM3, SM2_WITH_SM3_NAME)
    _add(algos.SignedDigestAlgorithmId, SM2_SIGN, "sm2")
