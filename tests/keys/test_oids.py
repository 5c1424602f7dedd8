"""The SM names keys.oids gives asn1crypto: the canary for what it relies on in asn1crypto's
internals (no public API names an OID in an ObjectIdentifier class), so that an asn1crypto upgrade
that changes them fails here and not in a sealed file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from asn1crypto import algos, cms, core, keys

from keys import oids
from keys.oids import ASN1CRYPTO_NAMES, SM2_CURVE, SM3, Asn1cryptoConflictError, register_with_asn1crypto

CHECK_UNTOUCHED = """
import asn1crypto.algos as algos, asn1crypto.keys as keys
for cls, oid in ((keys.NamedCurve, "1.2.156.10197.1.301"), (algos.DigestAlgorithmId, "1.2.156.10197.1.401"),
                 (algos.SignedDigestAlgorithmId, "1.2.156.10197.1.501"),
                 (algos.SignedDigestAlgorithmId, "1.2.156.10197.1.301.1")):
    assert isinstance(cls._map, dict), cls
    assert hasattr(cls, "_reverse_map"), cls
    print(cls.__name__, cls._map.get(oid), sorted(set(cls._map.values()) & {"sm2p256v1", "sm3", "sm2_sm3", "sm2"}))
"""


def test_asn1crypto_alone_does_not_name_the_sm_oids() -> None:
    """asn1crypto as released knows none of them (else keys.oids' entries may clash or be moot),
    and keeps its names in the class tables keys.oids adds to."""
    result = subprocess.run([sys.executable, "-c", CHECK_UNTOUCHED], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == [
        "NamedCurve None []",
        "DigestAlgorithmId None []",
        "SignedDigestAlgorithmId None []",
        "SignedDigestAlgorithmId None []",
    ]


@pytest.mark.parametrize(("cls", "dotted", "name"), ASN1CRYPTO_NAMES)
def test_names_and_oids_map_both_ways_through_the_public_api(
    cls: type[core.ObjectIdentifier], dotted: str, name: str
) -> None:
    assert cls.map(dotted) == name
    assert cls.unmap(name) == dotted
    assert cls(name).dotted == dotted and cls(name).native == name
    assert cls.load(cls(dotted).dump()).native == name


def test_what_pyhanko_and_our_encoders_build_with_the_names() -> None:
    digest = algos.DigestAlgorithm({"algorithm": "sm3"})
    assert digest.dump() == bytes.fromhex("300a06082a811ccf55018311")  # no parameters
    assert algos.DigestAlgorithm.load(digest.dump())["algorithm"].native == "sm3"
    signature = algos.SignedDigestAlgorithm({"algorithm": "sm2_sm3"})
    assert signature["algorithm"].dotted == "1.2.156.10197.1.501"
    protection = cms.CMSAlgorithmProtection(
        {"digest_algorithm": {"algorithm": "sm3"}, "signature_algorithm": {"algorithm": "sm2_sm3"}}
    )
    assert cms.CMSAlgorithmProtection.load(protection.dump()).native["digest_algorithm"]["algorithm"] == "sm3"
    curve = keys.ECDomainParameters(name="named", value="sm2p256v1")
    assert curve.chosen.dotted == SM2_CURVE
    assert keys.NamedCurve._key_sizes[SM2_CURVE] == 32


def test_registering_again_changes_nothing() -> None:
    tables = [(dict(cls._map), dict(cls._reverse_map or {})) for cls, _, _ in ASN1CRYPTO_NAMES]
    register_with_asn1crypto()
    register_with_asn1crypto()
    assert [(dict(cls._map), dict(cls._reverse_map or {})) for cls, _, _ in ASN1CRYPTO_NAMES] == tables


def test_an_oid_or_name_asn1crypto_uses_otherwise_is_refused() -> None:
    class Named(core.ObjectIdentifier):
        _map = {SM3: "shangmi3"}  # noqa: RUF012

    class Taken(core.ObjectIdentifier):
        _map = {"1.2.3.4": "sm3"}  # noqa: RUF012

    with pytest.raises(Asn1cryptoConflictError, match="shangmi3"):
        oids._check_free(Named, SM3, "sm3")
    with pytest.raises(Asn1cryptoConflictError, match=r"1\.2\.3\.4"):
        oids._check_free(Taken, SM3, "sm3")
    oids._check_free(algos.DigestAlgorithmId, SM3, "sm3")  # ours already: fine
