"""Seals made elsewhere (the provincial seal platform, 省级印章制作平台) and filed here: the SES_Seal
is read with `seals.ses` and checked with `verification.eseal`, as the verifier reads the seals
inside sealed OFD files.

Filed, such a seal must still seal licences here, so the certificate it lists for the signer
(签章人) must be one this branch CA issued to the department, whose key is kept here, and that is
neither revoked nor expired."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session, col, select

from cert_authority.errors import SealImportError
from cert_authority.store.models import DepartmentRow, IssuedCertificateRow
from cert_authority.timeutil import aware
from keys.errors import KeysError
from keys.x509 import Certificate
from seals.errors import PictureError
from seals.picture import decode_seal_picture
from seals.ses import CERT_LIST_CERTIFICATES, Seal, parse_seal
from verification.eseal import check_maker_chain, check_seal_made, seal_maker
from verification.report import Status
from verification.trust import TrustAnchors


@dataclass(frozen=True)
class ImportedSeal:
    seal: Seal
    maker: Certificate
    signer_serial: str  # the listed seal certificate we hold the key of (upper-case hex)


def read_seal(der: bytes) -> Seal:
    """The SES_Seal, decoded and signed by the maker it carries; SealImportError otherwise."""
    seal = parse_seal(der)  # MalformedSealError: 422 with what does not decode
    made = check_seal_made(seal)
    if made.status is not Status.VALID:
        raise SealImportError(f"印章不能备案：{made.message}")
    return seal


def check_imported_seal(
    session: Session,
    der: bytes,
    department: DepartmentRow,
    anchors: TrustAnchors,
    now: dt.datetime,
) -> ImportedSeal:
    """Everything a seal from elsewhere must be before it is filed for `department`."""
    seal = read_seal(der)
    maker = seal_maker(seal)
    assert maker is not None  # read_seal checked its signature with it
    chain = check_maker_chain(maker, anchors, now)
    if chain.status is not Status.VALID:
        raise SealImportError(f"印章不能备案：{chain.message}")
    if seal.picture.type.upper() != "PNG":
        raise SealImportError(f"印章的印模为 {seal.picture.type} 格式：只能备案 PNG 印模的印章")
    try:
        decode_seal_picture(seal.picture.data)
    except PictureError as exc:
        raise SealImportError(f"印章的印模无法使用：{exc}") from None
    if seal.valid_end <= now:
        raise SealImportError(f"印章已于 {seal.valid_end:%Y-%m-%d} 过期，不能备案")
    if seal.cert_list_type == CERT_LIST_CERTIFICATES:
        for der_certificate in seal.certificates:
            try:
                listed = Certificate.load(der_certificate)
                uscc = listed.uscc
            except KeysError:
                raise SealImportError("印章列出的签章人证书无法解析") from None
            if uscc != department.uscc:
                raise SealImportError(
                    f"印章列出的签章人证书（{listed.common_name}，{uscc or '无统一社会信用代码'}）"
                    f"不属于本部门（{department.uscc}），不能为本部门备案"
                )
    return ImportedSeal(seal, maker, listed_signer_serial(session, seal, department, now))


def listed_signer_serial(session: Session, seal: Seal, department: DepartmentRow, now: dt.datetime) -> str:
    """The newest live seal certificate of the department, with its key here, that the seal lists."""
    rows = session.exec(
        select(IssuedCertificateRow)
        .where(col(IssuedCertificateRow.uscc) == department.uscc)
        .where(col(IssuedCertificateRow.revoked_at).is_(None))
        .where(col(IssuedCertificateRow.key_label).is_not(None))
        .order_by(col(IssuedCertificateRow.not_before).desc())
    ).all()
    for row in rows:
        if aware(row.not_before) <= now <= aware(row.not_after) and seal.lists_certificate(row.der):
            return row.serial
    raise SealImportError(
        "印章列出的签章人证书中没有本分中心为本部门签发、私钥由本系统保管、且未吊销未过期的印章证书："
        "备案后无法用此印章签章（请先签发印章证书：ecas pki issue，再由省级平台制章）"
    )
