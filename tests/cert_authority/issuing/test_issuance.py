"""Issuing sealed licences (cert_authority.issuing.issuance), checked with tools we did not write: qpdf checks
the PDF, pyHanko's reader finds the signature, pyasn1 (RFC 5652) reads the CMS, SM3 comes from
`cryptography`, SM2 signatures are verified with the pure-Python gmssl, poppler extracts the text,
the OFD's SES_Signature is decoded with the independent pyasn1 spec of tests/seals/ses_asn1.py,
zbarimg reads the QR code. Bad input, idempotency, concurrency and atomicity on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree
from PIL import Image
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_modules import rfc5652
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.boundary import classify
from cert_authority.errors import IdempotencyConflictError, LicenceDataError
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.issuing.schemas import LicencePublic
from cert_authority.store.counters import current_value, serial_counter
from cert_authority.store.models import AuditEventRow, IdempotencyRow, LicenceEventRow, LicenceRow
from cert_authority.store.packing import PackedFiles
from keys.x509 import Certificate
from templates.fonts import FontSet
from templates.identifier import ID_CHECK, ID_WEIGHTS, LicenceIdentifier
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import (
    AUTHORITY_USCC,
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    Snapshots,
    example_data,
    flip_stored_bit,
    gmssl_verify,
    issue_example,
    licence_env_copy,
    raw_stored,
    require_tool_or_skip,
    ses_asn1,
    stored_files,
    stored_name,
    table_counts,
    template_data,
    type_spec_data,
)
from verification.report import Status

MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
IDENT_TYPE = AUTHORITY_USCC + "009"  # a test type whose template prints the identifier
OFD_NS = "{http://www.ofdspec.org/2016}"


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def citizen_id(first17: str) -> str:
    return first17 + ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


# --- independent checks of one issued licence -------------------------------------------------------


def check_pdf(data: bytes, seal_certificate: Certificate, path: Path) -> None:
    """qpdf accepts it; pyHanko's reader finds one signature covering the whole file but its hole,
    whose CMS messageDigest is SM3 of the covered bytes and whose SM2 signature gmssl verifies."""
    path.write_bytes(data)
    result = subprocess.run([require_tool_or_skip("qpdf"), "--check", str(path)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    [signature] = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
    start, first_length, second_start, second_length = (int(v) for v in signature.sig_object["/ByteRange"])
    assert start == 0 and second_start + second_length == len(data)
    hole = data[first_length:second_start]
    assert hole[:1] == b"<" and hole[-1:] == b">" and re.fullmatch(rb"[0-9A-Fa-f]*", hole[1:-1])
    covered = data[:first_length] + data[second_start:]
    content_info, _ = decoder.decode(bytes.fromhex(hole[1:-1].decode()), asn1Spec=rfc5652.ContentInfo())
    signed_data, _ = decoder.decode(bytes(content_info["content"]), asn1Spec=rfc5652.SignedData())
    [signer_info] = signed_data["signerInfos"]
    assert int(signer_info["sid"]["issuerAndSerialNumber"]["serialNumber"]) == seal_certificate.serial
    attributes = signer_info["signedAttrs"]
    [digest] = [a["attrValues"][0] for a in attributes if str(a["attrType"]) == MESSAGE_DIGEST]
    assert bytes(decoder.decode(bytes(digest), asn1Spec=univ.OctetString())[0]) == sm3(covered)
    signed_attributes = b"\x31" + encoder.encode(attributes)[1:]  # RFC 5652 §5.4: as a SET OF
    assert gmssl_verify(seal_certificate.public_key, bytes(signer_info["signature"]), signed_attributes)


def check_ofd(data: bytes, seal_certificate: Certificate, maker: Certificate) -> None:
    """A valid ZIP of well-formed XML whose SignedValue.dat decodes with the independent spec,
    is signed (gmssl) by the seal certificate over SM3 of Signature.xml, with a seal the maker signed."""
    asn1 = ses_asn1()
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.testzip() is None
        parts = {n: package.read(n) for n in package.namelist() if not n.endswith("/")}
    for name, part in parts.items():
        if name.endswith(".xml"):
            etree.fromstring(part)
    signed_value = parts["Doc_0/Signs/Sign_0/SignedValue.dat"]
    outer = asn1.decode(signed_value, asn1.SESSignature())
    tbs_der = bytes(outer["toSign"])
    tbs = asn1.decode(tbs_der, asn1.TBSSign())
    assert bytes(outer["cert"]) == seal_certificate.der
    assert gmssl_verify(seal_certificate.public_key, asn1.bits(outer["signature"]), tbs_der)
    assert asn1.bits(tbs["dataHash"]) == sm3(parts["Doc_0/Signs/Sign_0/Signature.xml"])
    assert str(tbs["propertyInfo"]) == "/Doc_0/Signs/Sign_0/Signature.xml"
    seal = asn1.decode(bytes(tbs["eseal"]), asn1.SESeal())
    assert bytes(seal["cert"]) == maker.der
    assert gmssl_verify(maker.public_key, asn1.bits(seal["signedValue"]), asn1.encode(seal["eSealInfo"]))
    listed = asn1.decode(bytes(seal["eSealInfo"]["property"]["certList"]), asn1.CertInfoList())
    assert seal_certificate.der in [bytes(c) for c in listed]
    signature_xml = etree.fromstring(parts["Doc_0/Signs/Sign_0/Signature.xml"])
    annot = signature_xml.find(f"{OFD_NS}SignedInfo/{OFD_NS}StampAnnot")
    assert annot is not None and annot.get("Boundary")


def pdf_text(data: bytes, path: Path) -> str:
    path.write_bytes(data)
    out = subprocess.run([require_tool_or_skip("pdftotext"), str(path), "-"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def qr_text(png: bytes, path: Path) -> str:
    path.write_bytes(png)
    out = subprocess.run(
        [require_tool_or_skip("zbarimg"), "--quiet", "--raw", str(path)], capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip()


# --- one module-wide authority on SQLite for the file checks -----------------------------------------


@pytest.fixture(scope="module")
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fonts: FontSet, snapshots: Snapshots
) -> Iterator[LicenceEnv]:
    data = tmp_path_factory.mktemp("issuance")
    with licence_env_copy(request, snapshots, fonts, data, "sqlite") as built:
        yield with_ident_type(built)


def with_ident_type(built: LicenceEnv) -> LicenceEnv:
    # A type whose template prints the identifier too (the example templates print the number).
    spec = type_spec_data(
        IDENT_TYPE,
        template=template_data(
            fields=[
                {"field": "name", "box": {"x": 20, "y": 50, "w": 170, "h": 10}, "label_width": 45},
                {"field": "code", "box": {"x": 20, "y": 65, "w": 170, "h": 10}, "label_width": 45},
                {"meta": "identifier", "box": {"x": 20, "y": 80, "w": 175, "h": 8}, "font_size": 8},
                {"meta": "validity", "box": {"x": 20, "y": 95, "w": 170, "h": 8}},
            ]
        )
    )
    built.registry.register_type(parse_model(LicenceTypeSpec, spec), {}, CLI_ACTOR)
    return built


def _seal_certificate(env: LicenceEnv, licence: LicencePublic) -> Certificate:
    seal = env.services.seals.get(CLI_ACTOR, licence.seal.seal_id)
    return env.pki.certificate(int(seal.cert_serial, 16)).certificate


@pytest.mark.parametrize("type_code", [FOOD_TYPE, VOCATIONAL_TYPE, DRAINAGE_TYPE, IDENT_TYPE])
def test_issued_licence_files_check_out(env: LicenceEnv, type_code: str, tmp_path: Path) -> None:
    if type_code == IDENT_TYPE:
        data = {"name": "测试标识有限公司", "code": "91350100M000100Y43"}
        result = env.services.issuance.issue_licence(CLI_ACTOR, type_code, data, issuer_uscc=ISSUER_USCC)
    else:
        data = example_data(type_code)
        result = issue_example(env, type_code)
    licence = result.licence
    assert not result.replayed and licence.status == "issued" and licence.version == 1

    identifier = LicenceIdentifier.parse(licence.identifier)
    assert (identifier.type_code, identifier.version) == (type_code, 1)
    assert identifier.issuer_code == licence.issuer.code
    assert licence.files.png is None  # the phone image is rendered on first request
    files = {fmt: env.services.queries.file(CLI_ACTOR, licence.identifier, fmt) for fmt in ("pdf", "ofd", "png")}
    assert env.services.queries.file(CLI_ACTOR, licence.identifier, "png") == files["png"]  # kept, not redrawn
    recorded = env.services.queries.get(CLI_ACTOR, licence.identifier).files
    for fmt, content in files.items():
        digest = getattr(recorded, fmt)
        assert sm3(content).hex() == digest
        if fmt == "png":
            assert env.registry.filestore.get(digest) == content
            assert content[:200] not in raw_stored(env.registry.filestore, digest)  # sealed at rest
        else:  # stored packed (store.packing): a manifest, far smaller than the file, sealed at rest
            assert not env.registry.filestore.exists(digest)
            assert PackedFiles(env.registry.filestore, env.engine).get(digest) == content
            assert len(raw_stored(env.registry.filestore, stored_name(env, digest))) < len(content) // 8

    seal_certificate = _seal_certificate(env, licence)
    check_pdf(files["pdf"], seal_certificate, tmp_path / "licence.pdf")
    check_ofd(files["ofd"], seal_certificate, env.pki.branch_certificate())
    text = pdf_text(files["pdf"], tmp_path / "text.pdf")
    holder_name = data[env.registry.type_spec(type_code).holder.name_field]
    assert holder_name in text
    if type_code == IDENT_TYPE:
        assert licence.identifier in text
    else:  # the example templates print the licence number, not the identifier
        assert licence.licence_number in text
    assert qr_text(files["png"], tmp_path / "licence.png") == f"http://127.0.0.1:8000/v/{licence.identifier}"
    with Image.open(io.BytesIO(files["png"])) as image:
        assert image.width == 1242  # phone resolution


def test_metadata_and_validity_follow_the_type(env: LicenceEnv) -> None:
    now = dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.timezone.utc)  # 2027-01-01 01:00 in Beijing
    food = issue_example(env, FOOD_TYPE, now=now).licence
    assert food.issue_date == dt.date(2027, 1, 1)  # the issuer's calendar day
    assert (food.valid_from, food.valid_until) == (dt.date(2027, 1, 1), dt.date(2031, 12, 31))  # 5 years − 1 day
    assert food.holder.code_type == "001" and food.holder.code == "91350100M000100Y43"
    assert food.template_version == 1
    meta = food.metadata
    assert (meta["ZZBS"], meta["ZZBH"], meta["ZZLXDM"]) == (food.identifier, food.licence_number, FOOD_TYPE)
    assert (meta["ZZBFJGDM"], meta["CZZTDMLX"], meta["ZZYXQJZRQ"]) == (ISSUER_USCC, "001", "2031-12-31")
    assert meta["ZZQZMC"] == food.seal.seal_name and meta["ZZBFJGJB"] == "city"

    vocational = issue_example(env, VOCATIONAL_TYPE).licence
    assert vocational.valid_until is None and vocational.holder.code_type == "111"
    assert vocational.photo_sm3 is not None and "photo" not in vocational.data

    drainage = issue_example(env, DRAINAGE_TYPE).licence
    assert (drainage.valid_from, drainage.valid_until) == (dt.date(2026, 1, 1), dt.date(2030, 12, 31))
    # Numbers run per issuer; identifier serials per type and issuer.
    assert food.licence_number.startswith("350100") and len(food.licence_number) == 17


def test_a_new_template_version_is_used_at_once(licence_env: LicenceEnv) -> None:
    """Parsed definitions are kept per process, but what is current is read on every issue."""
    env = licence_env
    assert issue_example(env, DRAINAGE_TYPE).licence.template_version == 1
    template = env.registry.get_template(DRAINAGE_TYPE).template
    assert env.registry.add_template_version(DRAINAGE_TYPE, template, {}, CLI_ACTOR) == 2
    assert issue_example(env, DRAINAGE_TYPE).licence.template_version == 2


# --- bad input: a precise 4xx, and nothing stored -----------------------------------------------------

FOOD = example_data(FOOD_TYPE)
VOCATIONAL = example_data(VOCATIONAL_TYPE)
FAKE_BIRTH = citizen_id("11010519491332002")  # 13th month, right check character
BAD_CASES = [
    ("unknown field", FOOD_TYPE, {**FOOD, "colour": "red"}, {}, 422, "未知字段：colour"),
    ("missing required", FOOD_TYPE, {k: v for k, v in FOOD.items() if k != "operator_name"}, {}, 422,
     "operator_name「经营者名称」：缺少必填字段"),
    ("wrong enum", FOOD_TYPE, {**FOOD, "business_format": "火锅店"}, {}, 422, "「主体业态」取值无效"),
    ("bad date", VOCATIONAL_TYPE, {**VOCATIONAL, "birth_date": "1990-02-30"}, {}, 422, "「出生日期」日期无效"),
    ("ID check character", VOCATIONAL_TYPE, {**VOCATIONAL, "id_number": "110105194912310021"}, {}, 422,
     "id_number「身份证号码」：持证主体代码无效：公民身份号码校验位错误：应为 X"),
    ("fake birth date", VOCATIONAL_TYPE, {**VOCATIONAL, "id_number": FAKE_BIRTH}, {}, 422,
     "出生日期 19491332 不是有效日期"),
    ("USCC check character", FOOD_TYPE, {**FOOD, "operator_code": "91350100M000100Y44"}, {}, 422,
     "统一社会信用代码校验位错误：应为 3"),
    ("oversized photo", VOCATIONAL_TYPE, VOCATIONAL, {"photo": b"\x89PNG" + bytes(3 * 1024 * 1024)}, 422,
     "photo：照片过大"),
    ("bogus photo", VOCATIONAL_TYPE, VOCATIONAL, {"photo": b"GIF89a not really"}, 422, "photo：照片不是可识别"),
    ("missing photo", VOCATIONAL_TYPE, VOCATIONAL, {"photo": None}, 422, "photo：缺少照片"),
    ("photo for a type without one", FOOD_TYPE, FOOD, {"photo": b"\x89PNG"}, 422, "没有照片字段"),
    ("photo in data", VOCATIONAL_TYPE, {**VOCATIONAL, "photo": "x"}, {}, 422, "photo「照片」：照片应通过 photo 上传"),
    ("control character", FOOD_TYPE, {**FOOD, "legal_representative": "林\x07小明"}, {}, 422, "控制字符 U+0007"),
    ("character no font has", FOOD_TYPE, {**FOOD, "legal_representative": "林\U00020000"}, {}, 422,
     "含字体无法显示的字符"),
    ("missing dates", DRAINAGE_TYPE, example_data(DRAINAGE_TYPE), {"valid_from": None, "valid_until": None}, 422,
     "valid_from：该证照类型的有效期在颁证时给出"),
    ("end before start", DRAINAGE_TYPE, example_data(DRAINAGE_TYPE),
     {"valid_from": dt.date(2030, 1, 1), "valid_until": dt.date(2029, 1, 1)}, 422, "早于起始日期"),
    ("dates for a fixed term", FOOD_TYPE, FOOD, {"valid_from": dt.date(2026, 1, 1)}, 422, "由类型规定（5年）"),
    ("not a JSON object", FOOD_TYPE, ["x"], {}, 422, "照面信息应为 JSON 对象"),
    ("bad idempotency key", FOOD_TYPE, FOOD, {"idempotency_key": "has space"}, 422, "Idempotency-Key"),
    ("type not allowed", VOCATIONAL_TYPE, VOCATIONAL, {"issuer_uscc": ISSUER_USCC}, 403,
     f"部门 {ISSUER_USCC} 不是证照类型 {VOCATIONAL_TYPE}"),
    ("issuer acting for another", FOOD_TYPE, FOOD, {"actor": Actor("apikey:9", "issuer", OTHER_ISSUER_USCC),
                                                     "issuer_uscc": ISSUER_USCC}, 403, "不能代"),
    ("user role", FOOD_TYPE, FOOD, {"actor": Actor("apikey:9", "user", ISSUER_USCC)}, 403, "权限不足"),
    ("admin without issuer", FOOD_TYPE, FOOD, {"issuer_uscc": None}, 422, "须指明颁证部门"),
    ("unknown type", "11100000MA0000001Q008", FOOD, {"issuer_uscc": ISSUER_USCC}, 404, "尚未登记"),
]


@pytest.mark.parametrize(("what", "type_code", "data", "options", "status", "message"), BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_refused_precisely_and_stores_nothing(
    env: LicenceEnv, what: str, type_code: str, data: object, options: dict[str, object], status: int, message: str
) -> None:
    counts, files = table_counts(env.engine), stored_files(env.settings)
    with pytest.raises(Exception) as caught:
        issue_example(env, type_code, data, **options)  # type: ignore[arg-type]
    assert classify(caught.value) is not None, repr(caught.value)
    assert classify(caught.value)[0] == status, repr(caught.value)  # type: ignore[index]
    assert message in str(caught.value), str(caught.value)
    assert table_counts(env.engine) == counts
    assert stored_files(env.settings) == files


def test_all_problems_are_named_at_once(env: LicenceEnv) -> None:
    data = {**FOOD, "business_format": "火锅店", "operator_code": "91350100M000100Y44", "extra": "x"}
    del data["premises"]
    with pytest.raises(LicenceDataError, match="证照数据有误") as caught:
        issue_example(env, FOOD_TYPE, data)
    problems = caught.value.problems
    assert len(problems) == 4 and any("extra" in p for p in problems) and any("premises" in p for p in problems)


# --- on both databases ---------------------------------------------------------------------------------


def test_no_active_seal_is_409_and_stores_nothing(licence_env: LicenceEnv) -> None:
    from cert_authority.demo import DEPARTMENTS

    seal = next(s for s in licence_env.services.seals.list(CLI_ACTOR) if s.department_uscc == DEPARTMENTS[0].uscc)
    licence_env.services.seals.revoke(CLI_ACTOR, seal.id, "cessationOfOperation")
    counts, files = table_counts(licence_env.engine), stored_files(licence_env.settings)
    with pytest.raises(Exception, match="没有有效的电子印章") as caught:
        issue_example(licence_env, FOOD_TYPE)
    assert classify(caught.value) == (409, "no_active_seal")
    assert table_counts(licence_env.engine) == counts and stored_files(licence_env.settings) == files


def test_idempotency_key_returns_the_same_licence(shared_licence_env: LicenceEnv) -> None:
    first = issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="order-42")
    counts = table_counts(shared_licence_env.engine)
    # The same request, spelled differently (spacing, key order): the same licence, nothing new.
    respelled = {k: f"  {v} " for k, v in reversed(list(FOOD.items()))}
    again = issue_example(shared_licence_env, FOOD_TYPE, respelled, idempotency_key="order-42")
    assert again.replayed and again.licence.identifier == first.licence.identifier
    assert table_counts(shared_licence_env.engine) == counts
    with pytest.raises(IdempotencyConflictError, match="order-42"):
        changed = {**FOOD, "legal_representative": "王五"}
        issue_example(shared_licence_env, FOOD_TYPE, changed, idempotency_key="order-42")
    assert table_counts(shared_licence_env.engine) == counts
    # Keys are scoped to the issuing department: another department's order-42 is its own licence.
    other = issue_example(shared_licence_env, VOCATIONAL_TYPE, idempotency_key="order-42")
    assert not other.replayed
    # Without a key, the same data is a new licence.
    assert issue_example(shared_licence_env, FOOD_TYPE).licence.identifier != first.licence.identifier


def _serial(identifier: str) -> int:
    return int(LicenceIdentifier.parse(identifier).serial)


def test_concurrent_issuance_gives_distinct_consecutive_serials(shared_licence_env: LicenceEnv) -> None:
    threads, per_thread = 6, 2
    start = current_value(shared_licence_env.registry.engine, serial_counter(FOOD_TYPE, ISSUER_USCC))
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                results.append(issue_example(shared_licence_env, FOOD_TYPE).licence.identifier)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    assert len(set(results)) == threads * per_thread
    assert sorted(_serial(i) for i in results) == list(range(start + 1, start + threads * per_thread + 1))
    with Session(shared_licence_env.registry.engine) as session:
        numbers = [row.licence_number for row in session.exec(select(LicenceRow))]
    assert len(set(numbers)) == len(numbers)


def test_concurrent_duplicates_of_one_key_make_one_licence(shared_licence_env: LicenceEnv) -> None:
    threads = 4
    before = table_counts(shared_licence_env.engine)["licence"]
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        result = issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="same-key")
        results.append((result.licence.identifier, result.replayed))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == threads and len({identifier for identifier, _ in results}) == 1
    assert [replayed for _, replayed in results].count(False) == 1
    assert table_counts(shared_licence_env.engine)["licence"] == before + 1


def test_a_failure_leaves_no_licence_and_no_reused_serial(
    shared_licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cert_authority.issuing.issuance as issuance
    import cert_authority.issuing.record_writes as issue_records

    before = table_counts(shared_licence_env.engine)
    start = current_value(shared_licence_env.registry.engine, serial_counter(FOOD_TYPE, ISSUER_USCC))

    def broken_sealing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("sealing device unplugged")

    with monkeypatch.context() as patch:  # after rendering, before any file is stored
        patch.setattr(issuance, "make_licence_files", broken_sealing)
        with pytest.raises(RuntimeError, match="unplugged"):
            issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="k-1")
    files_before_store = stored_files(shared_licence_env.settings)

    real_audit = issue_records._audit

    def audit_without_action(*args: Any) -> dict[str, Any]:
        return {**real_audit(*args), "action": None}  # NOT NULL: the database refuses the audit row

    # After the files are stored: the database refuses the audit row after the licence row went in
    # (one statement on PostgreSQL, one transaction on SQLite), and takes back the licence row too.
    with monkeypatch.context() as patch:
        patch.setattr(issue_records, "_audit", audit_without_action)
        with pytest.raises(IntegrityError):
            issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="k-1")
    orphans = stored_files(shared_licence_env.settings) - files_before_store
    assert len(orphans) == 2  # PDF and OFD: content-addressed, unreferenced, harmless

    after = table_counts(shared_licence_env.engine)
    for table in ("licence", "licence_event", "audit_event", "idempotency_key"):
        assert after[table] == before[table], table
    assert current_value(shared_licence_env.registry.engine, serial_counter(FOOD_TYPE, ISSUER_USCC)) == start + 2

    # The key was never recorded: the retry issues, with the next serial (the two taken stay gaps).
    licence = issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="k-1").licence
    assert _serial(licence.identifier) == start + 3
    with Session(shared_licence_env.registry.engine) as session:
        referenced = {d for row in session.exec(select(LicenceRow)) for d in (row.pdf_sm3, row.ofd_sm3, row.png_sm3)}
    assert not orphans & referenced


def _records(engine: Engine, identifier: str) -> dict[str, list[dict[str, Any]]]:
    """A licence's status events, audit events and key records, without what differs per licence."""
    with Session(engine) as session:
        licence = session.exec(select(LicenceRow).where(LicenceRow.identifier == identifier)).one()
        events = session.exec(select(LicenceEventRow).where(LicenceEventRow.licence_id == licence.id)).all()
        audits = session.exec(select(AuditEventRow).where(AuditEventRow.target == identifier)).all()
        keys = session.exec(select(IdempotencyRow).where(IdempotencyRow.licence_id == licence.id)).all()
    assert all(event.identifier == identifier for event in events)
    # Each row has its own place in the HMAC-SM3 chain (store/chain.py): present, and different.
    chain = {"chain_partition", "chain_seq", "chain_prev", "chain_mac"}
    assert all(getattr(row, name) is not None for row in (*events, *audits) for name in chain)
    return {
        "events": [event.model_dump(exclude={"id", "licence_id", "identifier", *chain}) for event in events],
        "audits": [
            audit.model_dump(exclude={"id", "target", "detail_json", *chain})
            | {"detail": {**json.loads(audit.detail_json or "{}"), "licence_number": "n"}}
            for audit in audits
        ],
        "keys": [key.model_dump(exclude={"key", "request_sm3", "licence_id"}) for key in keys],
    }


def test_one_licence_and_a_batch_write_the_same_records(shared_licence_env: LicenceEnv) -> None:
    # On PostgreSQL one licence goes in with one statement, a batch with one INSERT per table.
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    single = issue_example(shared_licence_env, FOOD_TYPE, idempotency_key="same-records-1", now=now).licence
    requests = [IssueRequest(FOOD, idempotency_key="same-records-2"), IssueRequest(FOOD)]
    batch = shared_licence_env.services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, ISSUER_USCC, now)
    first, second = (outcome.result.licence.identifier for outcome in batch if outcome.result)
    expected = _records(shared_licence_env.engine, single.identifier)
    assert [event["action"] for event in expected["events"]] == ["issue"] and len(expected["keys"]) == 1
    assert _records(shared_licence_env.engine, first) == expected
    assert _records(shared_licence_env.engine, second) == {**expected, "keys": []}


def test_audit_and_logs_mask_holder_codes(shared_licence_env: LicenceEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ecas")
    code = VOCATIONAL["id_number"]
    licence = issue_example(shared_licence_env, VOCATIONAL_TYPE).licence
    with Session(shared_licence_env.registry.engine) as session:
        [event] = session.exec(select(AuditEventRow).where(AuditEventRow.target == licence.identifier)).all()
    assert (event.action, event.actor, event.holder_code_masked) == ("issue", "cli", "110105********002X")
    assert code not in json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
    assert code not in caplog.text and "110105********002X" in caplog.text


def test_photo_is_stored_normalised(shared_licence_env: LicenceEnv) -> None:
    from cert_authority.demo import demo_photo

    licence = issue_example(shared_licence_env, VOCATIONAL_TYPE, photo=demo_photo(3)).licence
    assert licence.photo_sm3 is not None
    stored = shared_licence_env.registry.filestore.get(licence.photo_sm3)
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG" and image.size == (300, 400)
    assert licence.photo_sm3 != sm3(demo_photo(3)).hex()  # the checked JPEG, not the PNG upload


def test_a_licence_issued_with_a_damaged_stored_photo_is_servable(licence_env: LicenceEnv) -> None:
    """A stored photo damaged (someone with access to the store), then a new licence with the same
    photo: the photo is rewritten, not left as it is, so the new licence verifies and renders (a
    record naming a damaged file would be issued, 201, but unservable)."""
    env = licence_env
    first = issue_example(env, VOCATIONAL_TYPE).licence  # the demo photo
    assert first.photo_sm3 is not None
    flip_stored_bit(env.registry.filestore, first.photo_sm3)  # someone with access to the store
    second = issue_example(env, VOCATIONAL_TYPE).licence  # the same photo, a new licence
    assert second.photo_sm3 == first.photo_sm3
    report = env.services.verification.verify_identifier(CLI_ACTOR, second.identifier)
    assert (report.result, report.reason) == (Status.VALID, "ok"), [c.message for c in report.checks]
    assert env.registry.filestore.get(second.photo_sm3)
