"""GB/T 38540 e-seal structures (seals.ses), checked with code we did not write: a pyasn1 reading
of the standard's ASN.1 (ses_asn1.py), SM2 signatures verified with the pure-Python gmssl package,
and the seal and signature ofdrw (Java) wrote into ../shared/vectors/ofd/allprotected.ofd."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.type import univ

from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey
from keys.x509 import Certificate
from seals.errors import MalformedSealError, SealError, SealInputError, SealSigningError
from seals.ses import (
    assemble_signature,
    make_seal,
    parse_seal,
    parse_signature,
    sign_tbs,
    tbs_sign_bytes,
)
from tests.conftest import NOW, SEAL_NAME, PkiHierarchy, gmssl_sm3, gmssl_verify, ofd_vector
from tests.seals import ses_asn1

SM2_WITH_SM3 = "1.2.156.10197.1.501"
DATA_HASH = gmssl_sm3(b"<ofd:Signature/>")
PROPERTY = "/Doc_0/Signs/Sign_0/Signature.xml"


@pytest.fixture(scope="module")
def signature(pki: PkiHierarchy, eseal: bytes) -> bytes:
    return sign_tbs(pki.seal_signer, eseal, DATA_HASH, PROPERTY, NOW)


def _generalized(text: object) -> dt.datetime:
    return dt.datetime.strptime(str(text), "%Y%m%d%H%M%SZ").replace(tzinfo=dt.timezone.utc)


# --- the seal -------------------------------------------------------------------------------------


def test_seal_decodes_with_independent_pyasn1_spec(pki: PkiHierarchy, eseal: bytes, seal_picture: bytes) -> None:
    seal = ses_asn1.decode(eseal, ses_asn1.SESeal())
    info = seal["eSealInfo"]
    assert str(info["header"]["ID"]) == "ES"
    assert int(info["header"]["version"]) == 4
    assert str(info["header"]["Vid"]) == "ECAS"
    assert str(info["esID"]) == "3501000000000001"
    prop = info["property"]
    assert int(prop["type"]) == 1
    assert str(prop["name"]) == SEAL_NAME
    assert int(prop["certListType"]) == 1
    certs = ses_asn1.decode(bytes(prop["certList"]), ses_asn1.CertInfoList())
    assert [bytes(c) for c in certs] == [pki.seal.der]
    # GeneralizedTime in UTC, whole seconds (GB/T 38540 §7.1)
    assert str(prop["validStart"]).endswith("Z") and len(str(prop["validStart"])) == 15
    assert _generalized(prop["validStart"]) == NOW - dt.timedelta(days=1)
    assert _generalized(prop["validEnd"]) == NOW + dt.timedelta(days=365)
    assert _generalized(prop["createDate"]) == NOW - dt.timedelta(days=1)
    picture = info["picture"]
    assert str(picture["type"]) == "PNG"
    assert bytes(picture["data"]) == seal_picture
    assert (int(picture["width"]), int(picture["height"])) == (42, 42)
    assert not info["extDatas"].isValue
    assert bytes(seal["cert"]) == pki.branch.der
    assert str(seal["signAlgID"]) == SM2_WITH_SM3
    # pyasn1's DER encoder writes the same bytes: ours is canonical DER.
    assert ses_asn1.encode(seal) == eseal


def test_seal_signature_verifies_with_gmssl(pki: PkiHierarchy, eseal: bytes) -> None:
    seal = ses_asn1.decode(eseal, ses_asn1.SESeal())
    info_der = ses_asn1.encode(seal["eSealInfo"])
    signed_value = ses_asn1.bits(seal["signedValue"])
    assert gmssl_verify(pki.branch.public_key, signed_value, info_der)
    assert not gmssl_verify(pki.branch.public_key, signed_value, info_der + b"\x00")
    # The maker is the branch CA: the seal certificate's key did not sign it.
    assert not gmssl_verify(pki.seal.public_key, signed_value, info_der)


def test_parse_seal_returns_what_was_made(pki: PkiHierarchy, eseal: bytes, seal_picture: bytes) -> None:
    seal = parse_seal(eseal)
    assert (seal.vid, seal.version, seal.es_id) == ("ECAS", 4, "3501000000000001")
    assert (seal.seal_type, seal.name) == (1, SEAL_NAME)
    assert seal.cert_list_type == 1 and seal.certificates == (pki.seal.der,) and seal.cert_digests == ()
    assert (seal.valid_start, seal.valid_end) == (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))
    assert seal.picture.type == "PNG" and seal.picture.data == seal_picture
    assert (seal.picture.width_mm, seal.picture.height_mm) == (42, 42)
    assert seal.maker_certificate == pki.branch.der
    assert seal.signature_algorithm == SM2_WITH_SM3
    assert seal.extensions == ()
    assert seal.seal_info_der == ses_asn1.encode(ses_asn1.decode(eseal, ses_asn1.SESeal())["eSealInfo"])
    assert seal.lists_certificate(pki.seal.der) and not seal.lists_certificate(pki.branch.der)
    assert seal.valid_at(NOW) and not seal.valid_at(NOW + dt.timedelta(days=400))


def test_make_seal_checks_its_input(pki: PkiHierarchy, seal_picture: bytes) -> None:
    good: dict[str, object] = {
        "es_id": "1",
        "name": "章",
        "seal_type": 1,
        "signer_certificates": [pki.seal.der],
        "picture_png": seal_picture,
        "width_mm": 40,
        "height_mm": 40,
        "valid_start": NOW,
        "valid_end": NOW + dt.timedelta(days=1),
        "created": NOW,
    }
    make_seal(pki.branch_signer, **good)  # type: ignore[arg-type]
    bad_values = {
        "es_id": "印章01",  # IA5String: ASCII only
        "name": " ",
        "seal_type": 3,
        "signer_certificates": [b"not a certificate"],
        "picture_png": b"GIF89a",
        "width_mm": 0,
        "valid_end": NOW - dt.timedelta(days=1),
        "created": NOW.replace(tzinfo=None),
    }
    for key, value in bad_values.items():
        with pytest.raises(SealInputError) as info:
            make_seal(pki.branch_signer, **{**good, key: value})  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError) and isinstance(info.value, SealError)
    with pytest.raises(SealInputError, match="没有证书"):
        make_seal(SoftwareSigner(SM2PrivateKey.generate()), **good)  # type: ignore[arg-type]


@dataclasses.dataclass
class _FaultySigner:
    """A signing device that answers with another key's signature (a fault, or a swapped key)."""

    certificate_chain: tuple[Certificate, ...]

    def sign(self, message: bytes) -> bytes:
        return SM2PrivateKey.generate().sign(message)


def test_faulty_signing_device_never_yields_a_seal(pki: PkiHierarchy, eseal: bytes, seal_picture: bytes) -> None:
    faulty = _FaultySigner(pki.branch_signer.certificate_chain)
    with pytest.raises(SealSigningError):
        make_seal(
            faulty,  # type: ignore[arg-type]
            es_id="1",
            name="章",
            seal_type=1,
            signer_certificates=[pki.seal.der],
            picture_png=seal_picture,
            width_mm=40,
            height_mm=40,
            valid_start=NOW,
            valid_end=NOW + dt.timedelta(days=1),
            created=NOW,
        )
    tbs = tbs_sign_bytes(eseal, DATA_HASH, PROPERTY, NOW)
    with pytest.raises(SealSigningError):
        assemble_signature(tbs, pki.seal.der, SM2PrivateKey.generate().sign(tbs))


# --- the signature --------------------------------------------------------------------------------


def test_signature_decodes_and_verifies_independently(pki: PkiHierarchy, eseal: bytes, signature: bytes) -> None:
    outer = ses_asn1.decode(signature, ses_asn1.SESSignature())
    tbs_der = bytes(outer["toSign"])
    tbs = ses_asn1.decode(tbs_der, ses_asn1.TBSSign())
    assert int(tbs["version"]) == 4
    assert bytes(tbs["eseal"]) == eseal
    assert _generalized(tbs["timeInfo"]) == NOW
    assert ses_asn1.bits(tbs["dataHash"]) == DATA_HASH
    assert str(tbs["propertyInfo"]) == PROPERTY
    assert not tbs["extDatas"].isValue
    assert bytes(outer["cert"]) == pki.seal.der
    assert str(outer["signatureAlgID"]) == SM2_WITH_SM3
    assert not outer["timeStamp"].isValue
    sig = ses_asn1.bits(outer["signature"])
    assert gmssl_verify(pki.seal.public_key, sig, tbs_der)
    assert not gmssl_verify(pki.seal.public_key, sig, tbs_der[:-1] + b"Y")
    assert ses_asn1.encode(outer) == signature


def test_parse_signature(pki: PkiHierarchy, eseal: bytes, signature: bytes) -> None:
    parsed = parse_signature(signature)
    assert parsed.version == 4 and parsed.seal.der == eseal
    assert (parsed.time, parsed.data_hash, parsed.property_info) == (NOW, DATA_HASH, PROPERTY)
    assert parsed.signer_certificate == pki.seal.der and parsed.signature_algorithm == SM2_WITH_SM3
    assert parsed.timestamp is None and parsed.extensions == ()
    assert pki.seal.public_key.verify(parsed.signature, parsed.tbs_der)


def test_staged_signing_as_a_batch_or_hsm_would(pki: PkiHierarchy, eseal: bytes) -> None:
    signer = pki.seal_signer
    hashes = [gmssl_sm3(f"document {i}".encode()) for i in range(5)]
    tbs_list = [tbs_sign_bytes(eseal, h, PROPERTY, NOW) for h in hashes]
    digests = [signer.digest(tbs) for tbs in tbs_list]  # sent to the device in one batch
    values = [signer.sign_digest(e) for e in digests]
    for data_hash, tbs, value in zip(hashes, tbs_list, values, strict=True):
        der = assemble_signature(tbs, pki.seal.der, value)
        outer = ses_asn1.decode(der, ses_asn1.SESSignature())
        assert gmssl_verify(pki.seal.public_key, ses_asn1.bits(outer["signature"]), bytes(outer["toSign"]))
        assert parse_signature(der).data_hash == data_hash


def test_signer_must_be_listed_and_seal_valid(pki: PkiHierarchy, eseal: bytes) -> None:
    with pytest.raises(SealInputError, match="不在印章"):
        sign_tbs(pki.branch_signer, eseal, DATA_HASH, PROPERTY, NOW)
    tbs = tbs_sign_bytes(eseal, DATA_HASH, PROPERTY, NOW)
    with pytest.raises(SealInputError, match="不在印章"):
        assemble_signature(tbs, pki.branch.der, pki.branch_signer.sign(tbs))
    for when in (NOW - dt.timedelta(days=2), NOW + dt.timedelta(days=366)):
        with pytest.raises(SealInputError, match="有效期"):
            sign_tbs(pki.seal_signer, eseal, DATA_HASH, PROPERTY, when)
    with pytest.raises(SealInputError):
        tbs_sign_bytes(eseal, b"short", PROPERTY, NOW)
    with pytest.raises(SealInputError):
        tbs_sign_bytes(eseal, DATA_HASH, "/文档/Signature.xml", NOW)  # IA5String


# --- both forms of the trailing optional fields ---------------------------------------------------


def _ext_datas() -> ses_asn1.ExtensionDatas:
    ext = ses_asn1.ExtData()
    ext["extnID"] = univ.ObjectIdentifier("1.2.156.112562.1.1")
    ext["critical"] = True
    ext["extnValue"] = univ.OctetString(b"ext")
    datas = ses_asn1.ExtensionDatas()
    datas.append(ext)
    return datas


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data_hash=st.binary(min_size=32, max_size=32),
    when=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)),
    signature=st.binary(min_size=8, max_size=72),
)
def test_kept_shapes_give_what_asn1crypto_builds(
    pki: PkiHierarchy, eseal: bytes, data_hash: bytes, when: dt.datetime, signature: bytes
) -> None:
    """TBS_Sign and SES_Signature after the first of a shape (seals.der_shapes) are what asn1crypto
    encodes afresh from the same values."""
    from asn1crypto import core

    from seals.ses import SESSignature, TBSSign, encode_signature, encode_tbs_sign, tbs_sign_constant_prefix

    when = when.replace(microsecond=0)
    tbs = encode_tbs_sign(eseal, data_hash, PROPERTY, when)
    fresh = {"version": 4, "eseal": core.Any.load(eseal), "time_info": when, "data_hash": data_hash}
    assert tbs == TBSSign({**fresh, "property_info": PROPERTY}).dump()
    prefix = tbs_sign_constant_prefix(eseal, 32, PROPERTY)
    assert prefix is not None and tbs.startswith(prefix) and prefix.endswith(eseal)
    ours = encode_signature(tbs, pki.seal.der, signature)
    values = {"to_sign": core.Any.load(tbs), "cert": pki.seal.der, "signature_alg_id": SM2_WITH_SM3}
    assert ours == SESSignature({**values, "signature": signature}).dump()


@pytest.mark.parametrize("tagged", [False, True])
def test_seal_info_extensions_in_either_form(eseal: bytes, tagged: bool) -> None:
    seal = ses_asn1.decode(eseal, ses_asn1.SESeal())
    info = ses_asn1.SESSealInfoTagged() if tagged else ses_asn1.SESSealInfo()
    for name in ("header", "esID", "property", "picture"):
        info[name] = seal["eSealInfo"][name]
    info["extDatas"].extend(_ext_datas())
    wrapped = ses_asn1.SESealAnyInfo()
    wrapped["eSealInfo"] = univ.Any(ses_asn1.encode(info))
    for name in ("cert", "signAlgID", "signedValue"):
        wrapped[name] = seal[name]
    parsed = parse_seal(ses_asn1.encode(wrapped))
    assert [(e.oid, e.critical, e.value) for e in parsed.extensions] == [("1.2.156.112562.1.1", True, b"ext")]
    assert parsed.seal_info_der == ses_asn1.encode(info)


@pytest.mark.parametrize("tagged", [False, True])
def test_tbs_extensions_and_timestamp_in_either_form(signature: bytes, tagged: bool) -> None:
    outer = ses_asn1.decode(signature, ses_asn1.SESSignature())
    tbs = ses_asn1.decode(bytes(outer["toSign"]), ses_asn1.TBSSign())
    variant = ses_asn1.TBSSign() if tagged else ses_asn1.TBSSignUntagged()
    for name in ("version", "eseal", "timeInfo", "dataHash", "propertyInfo"):
        variant[name] = tbs[name]
    variant["extDatas"].extend(_ext_datas())
    rebuilt = ses_asn1.SESSignature() if tagged else ses_asn1.SESSignatureUntagged()
    rebuilt["toSign"] = univ.Any(ses_asn1.encode(variant))
    for name in ("cert", "signatureAlgID", "signature"):
        rebuilt[name] = outer[name]
    stamp_type = rebuilt.componentType["timeStamp"].asn1Object
    rebuilt["timeStamp"] = stamp_type.clone(hexValue=b"timestamp token".hex())
    parsed = parse_signature(ses_asn1.encode(rebuilt))
    assert [e.oid for e in parsed.extensions] == ["1.2.156.112562.1.1"]
    assert parsed.timestamp == b"timestamp token"
    assert parsed.tbs_der == ses_asn1.encode(variant)


# --- malformed input ------------------------------------------------------------------------------


def test_malformed_input_is_one_error(eseal: bytes, signature: bytes) -> None:
    for data in (b"", b"\x30\x00", eseal[:-1], eseal + b"\x00", signature[:100], b"\x04\x02ES"):
        with pytest.raises(MalformedSealError):
            parse_seal(data)
        with pytest.raises(MalformedSealError):
            parse_signature(data)
    # A BIT STRING that declares unused bits would carry the same octets: refused.
    seal = ses_asn1.decode(eseal, ses_asn1.SESeal())
    value = ses_asn1.encode(seal["signedValue"])
    assert value[2] == 0
    with pytest.raises(MalformedSealError, match="未用位"):
        parse_seal(eseal.replace(value, value[:2] + b"\x01" + value[3:]))


def test_other_versions_are_refused(eseal: bytes) -> None:
    seal = ses_asn1.decode(eseal, ses_asn1.SESeal())
    seal["eSealInfo"]["header"]["version"] = 3
    with pytest.raises(MalformedSealError, match="第 4 版"):
        parse_seal(ses_asn1.encode(seal))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_signature_never_escapes_the_error_tree(signature: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(signature) - 1))
    # The picture bytes are opaque: mutate the ASN.1 around them, where parsing can go wrong.
    position = position if position < 200 or position > len(signature) - 800 else position % 200
    mutated = bytearray(signature)
    mutated[position] ^= data.draw(st.integers(1, 255))
    try:
        parsed = parse_signature(bytes(mutated))
    except MalformedSealError:
        return
    assert dataclasses.is_dataclass(parsed)


# --- ofdrw's seal and signature -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ofdrw_parts() -> dict[str, bytes]:
    path = ofd_vector("allprotected.ofd")
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as package:
        return {name: package.read(name) for name in package.namelist() if not name.endswith("/")}


@pytest.mark.interop
def test_reads_ofdrw_seal(ofdrw_parts: dict[str, bytes]) -> None:
    esl = ofdrw_parts["Doc_0/Signs/Sign_0/Seal.esl"]
    seal = parse_seal(esl)
    assert seal.name == "OFD R&W 测试用印章" and seal.vid == "OFDR&WTest" and seal.version == 4
    assert seal.picture.type == "PNG" and seal.picture.data.startswith(b"\x89PNG")
    assert (seal.picture.width_mm, seal.picture.height_mm) == (40, 40)
    assert seal.signature_algorithm == SM2_WITH_SM3
    # Our slice of the signed SealInfo is pyasn1's too, and the maker's signature holds over it.
    independent = ses_asn1.encode(ses_asn1.decode(esl, ses_asn1.SESeal())["eSealInfo"])
    assert seal.seal_info_der == independent
    maker = Certificate.load(seal.maker_certificate)
    assert gmssl_verify(maker.public_key, seal.signature, independent)
    assert maker.public_key.verify(seal.signature, seal.seal_info_der)


@pytest.mark.interop
def test_reads_ofdrw_signature(ofdrw_parts: dict[str, bytes]) -> None:
    signature = parse_signature(ofdrw_parts["Doc_0/Signs/Sign_0/SignedValue.dat"])
    assert signature.version == 4
    assert signature.seal.der == ofdrw_parts["Doc_0/Signs/Sign_0/Seal.esl"]
    assert signature.property_info == "/Doc_0/Signs/Sign_0/Signature.xml"
    assert signature.data_hash == gmssl_sm3(ofdrw_parts["Doc_0/Signs/Sign_0/Signature.xml"])
    assert signature.time == dt.datetime(2020, 10, 23, 11, 45, 37, tzinfo=dt.timezone.utc)
    signer = Certificate.load(signature.signer_certificate)
    assert signature.seal.lists_certificate(signer.der)
    tbs = bytes(ses_asn1.decode(ofdrw_parts["Doc_0/Signs/Sign_0/SignedValue.dat"], ses_asn1.SESSignature())["toSign"])
    assert signature.tbs_der == tbs
    assert gmssl_verify(signer.public_key, signature.signature, tbs)
    assert signer.public_key.verify(signature.signature, tbs)
    assert not signer.public_key.verify(signature.signature, tbs.replace(b"/Doc_0", b"/Doc_1"))


def test_a_malformed_lazily_parsed_field_is_malformed_too(signature: bytes) -> None:
    """Found by the fuzz test above: TBS_Sign's tag turned into universal constructed tag 14. asn1crypto
    reads that field only when it is first used, and its ValueError must not escape."""
    mutated = bytearray(signature)
    assert mutated[4] == 0x30  # TBS_Sign, the first element of SES_Signature
    mutated[4] = 0x2E
    with pytest.raises(MalformedSealError):
        parse_signature(bytes(mutated))
