"""The CMS SignedData of PDF seals and trust bundles (seals.signed_data), against pyHanko's own CMS
builder (an implementation we did not write) and pyasn1-modules' RFC 5652 decoder."""

from __future__ import annotations

import asyncio
import datetime as dt

from asn1crypto import cms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.der import decoder, encoder
from pyasn1_modules import rfc5652

from keys.sm2 import SIGNATURE_MAX_DER, sm3
from seals import signed_data as signed_data_module
from seals.pdf_seal import Sm2CmsSigner
from seals.signed_data import reserved_length, signed_attributes, signed_data
from tests.conftest import NOW, PkiHierarchy, gmssl_verify

MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME = "1.2.840.113549.1.9.5"


def _pyhanko_cms(pki: PkiHierarchy, attributes: bytes, signature: bytes) -> bytes:
    signer = Sm2CmsSigner(pki.seal_signer.certificate_chain, signature=signature)
    content = asyncio.run(signer.async_sign_prescribed_attributes("sm3", cms.CMSAttributes.load(attributes)))
    return bytes(content.dump())


def test_signed_data_is_byte_for_byte_what_pyhanko_builds(pki: PkiHierarchy) -> None:
    attributes = signed_attributes(sm3(b"document"), NOW, pki.seal.der)
    signature = pki.seal_signer.sign(attributes)
    ours = signed_data(pki.seal_signer.certificate_chain, attributes, signature)
    assert ours == _pyhanko_cms(pki, attributes, signature)
    assert len(ours) <= reserved_length(tuple(c.der for c in pki.seal_signer.certificate_chain))


def test_an_independent_decoder_reads_it_and_gmssl_verifies_it(pki: PkiHierarchy) -> None:
    digest = sm3(b"document")
    attributes = signed_attributes(digest, NOW, pki.seal.der)
    der = signed_data(pki.seal_signer.certificate_chain, attributes, pki.seal_signer.sign(attributes))
    info, rest = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    assert rest == b"" and str(info["contentType"]) == str(rfc5652.id_signedData)
    content, _ = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.SignedData())
    certificates = {encoder.encode(c["certificate"]) for c in content["certificates"]}
    assert certificates == {pki.seal.der, pki.branch.der, pki.root.der}
    [signer_info] = content["signerInfos"]
    assert int(signer_info["sid"]["issuerAndSerialNumber"]["serialNumber"]) == pki.seal.serial
    signed = signer_info["signedAttrs"]
    values = {str(a["attrType"]): a["attrValues"][0] for a in signed}
    assert bytes(decoder.decode(bytes(values[MESSAGE_DIGEST]))[0]) == digest
    # RFC 5652 §5.4: the signature covers the attributes as an explicit SET OF.
    assert encoder.encode(signed)[:1] == b"\xa0" and b"\x31" + encoder.encode(signed)[1:] == attributes
    assert gmssl_verify(pki.seal.public_key, bytes(signer_info["signature"]), attributes)


def test_signing_time_switches_to_generalized_time_in_2050(pki: PkiHierarchy) -> None:
    for year, kind in ((2049, "utc_time"), (2050, "generalized_time")):
        when = NOW.replace(year=year, month=6, day=1)
        attributes = {
            a["type"].native: a["values"][0]
            for a in cms.CMSAttributes.load(signed_attributes(bytes(32), when, pki.seal.der))
        }
        assert attributes["signing_time"].name == kind  # RFC 5652 §11.3
        assert attributes["signing_time"].native == when


def test_reserved_length_bounds_the_longest_signed_data(pki: PkiHierarchy) -> None:
    chain = pki.seal_signer.certificate_chain
    latest = signed_attributes(bytes(32), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc), pki.seal.der)
    longest = signed_data(chain, latest, bytes(SIGNATURE_MAX_DER))
    assert len(longest) < reserved_length(tuple(c.der for c in chain))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    digest=st.binary(min_size=32, max_size=32),
    when=st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)),
    signature=st.binary(min_size=8, max_size=SIGNATURE_MAX_DER),
)
def test_kept_shapes_give_what_asn1crypto_builds(
    pki: PkiHierarchy, digest: bytes, when: dt.datetime, signature: bytes
) -> None:
    """After the first signature of a shape, the encoding is asn1crypto's first one with the new
    values put in: the same as asn1crypto encoding them afresh."""
    when = when.replace(microsecond=0)
    chain = tuple(c.der for c in pki.seal_signer.certificate_chain)
    attributes = signed_attributes(digest, when, pki.seal.der)
    time = cms.Time({"utc_time": when} if when.year < 2050 else {"generalized_time": when})
    assert attributes == signed_data_module._build_signed_attributes(digest, time, pki.seal.der)
    tagged = b"\xa0" + attributes[1:]
    ours = signed_data(pki.seal_signer.certificate_chain, attributes, signature)
    assert ours == signed_data_module._build_signed_data(chain, tagged, signature)
