"""What seal governance (印章备案) takes and gives, shared by the HTTP API and the CLI (`--json`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keys.errors import InvalidCodeError
from keys.uscc import validate_uscc


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _checked_uscc(value: str) -> str:
    try:
        return validate_uscc(value)
    except InvalidCodeError as exc:
        raise ValueError(str(exc)) from None


DepartmentUscc = Annotated[str, Field(description="用章部门的统一社会信用代码")]
LegalRepresentative = Annotated[str, Field(min_length=2, max_length=50, description="用章部门的法定代表人姓名")]


class SealCreate(_Input):
    """An application to file a seal (电子印章备案申请). The name is the department's registered name
    followed by the seal's purpose (某局 + 电子证照专用章). Without `picture`, the standard round red
    seal is drawn: the department's name along the arc, a star, `purpose` on the bottom line,
    `diameter_mm` across. An administrator approves it before the seal exists."""

    department_uscc: DepartmentUscc
    name: Annotated[
        str, Field(min_length=2, max_length=200, description="印章名称：本部门登记名称加用途，如 某局电子证照专用章")
    ]
    legal_representative: LegalRepresentative
    seal_type: Annotated[Literal[1, 2], Field(description="印章类型：1 单位印章，2 个人印章（GB/T 38540）")] = 1
    purpose: (
        Annotated[str, Field(min_length=1, max_length=14, description="印章用途：名称中部门名称之后的部分（印在星下）")]
        | None
    ) = None
    picture: Annotated[str, Field(description="上传的印模 PNG（base64）；不给出则按部门名称生成圆形印章")] | None = None
    diameter_mm: Annotated[float, Field(ge=20, le=80, description="印章直径（毫米）；上传图片时为其宽度")] = 42
    valid_start: Annotated[dt.date, Field(description="印章有效期起始日期（默认为印章证书的起始）")] | None = None
    valid_end: Annotated[dt.date, Field(description="印章有效期截止日期（默认为印章证书的截止）")] | None = None

    @field_validator("department_uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        return _checked_uscc(value)


class SealImport(_Input):
    """A seal made by the provincial seal platform, to file here: the DER SES_Seal (GB/T 38540) and
    the certificates between its maker and the root, if the seal does not carry them. The seal must
    list a seal certificate this branch CA issued to the department (its key is kept here)."""

    department_uscc: DepartmentUscc
    legal_representative: LegalRepresentative
    seal: Annotated[str, Field(min_length=1, description="DER 编码的 SES_Seal 电子印章（base64）")]
    maker_chain: Annotated[str, Field(max_length=65536, description="制章者证书之上的CA证书（PEM，可多张）")] | None = (
        None
    )

    @field_validator("department_uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        return _checked_uscc(value)


class SealReject(_Input):
    reason: Annotated[str, Field(min_length=2, max_length=500, description="驳回理由")]


class SealSuspend(_Input):
    reason: Annotated[str, Field(min_length=2, max_length=200, description="暂停使用的原因")]


class SealRevoke(_Input):
    reason: Annotated[
        str, Field(description="RFC 5280 吊销原因：keyCompromise、superseded、cessationOfOperation 等")
    ] = "cessationOfOperation"
    note: Annotated[str, Field(max_length=200, description="说明")] | None = None


SealStatus = Literal["applied", "active", "suspended", "rejected", "revoked", "expired"]


class SealPublic(BaseModel):
    id: int
    department_uscc: str
    department_name: str
    es_id: Annotated[str | None, Field(description="印章编码（GB/T 38540 esID），备案后才有")]
    name: str
    seal_type: int
    purpose: str | None
    legal_representative: Annotated[str | None, Field(description="法定代表人")]
    origin: Annotated[str, Field(description="made 由本分中心制作，imported 由省级印章平台制作后导入")]
    cert_serial: Annotated[str | None, Field(description="印章证书序列号（十六进制），备案后才有")]
    seal_sm3: Annotated[str | None, Field(description="DER 编码 SES_Seal 的 SM3 摘要")]
    picture_sm3: str
    width_mm: int
    height_mm: int
    requested_start: dt.date | None
    requested_end: dt.date | None
    valid_start: dt.datetime | None
    valid_end: dt.datetime | None
    status: Annotated[
        SealStatus,
        Field(
            description="applied 待审批、active 有效、suspended 暂停使用、rejected 已驳回、"
            "revoked 已吊销、expired 已过期"
        ),
    ]
    decided_at: Annotated[dt.datetime | None, Field(description="审批（备案或驳回）时间")]
    decided_by: str | None
    decision_note: Annotated[str | None, Field(description="驳回理由")]
    suspended_at: dt.datetime | None
    suspension_reason: str | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    revocation_note: str | None
    created_at: Annotated[dt.datetime, Field(description="申请时间")]
    created_by: str


class FilingCertificate(BaseModel):
    serial: Annotated[str, Field(description="印章证书序列号（十六进制）")]
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    sm3: Annotated[str, Field(description="证书 DER 的 SM3 摘要")]


class FilingSeal(BaseModel):
    """One active seal as the province files it."""

    es_id: str
    name: str
    seal_type: int
    purpose: str | None
    department_name: str
    department_uscc: str
    legal_representative: str | None
    origin: str
    maker: Annotated[str, Field(description="制章者证书主题")]
    certificate: FilingCertificate
    valid_start: dt.datetime
    valid_end: dt.datetime
    width_mm: int
    height_mm: int
    picture_sm3: Annotated[str, Field(description="印模 PNG 的 SM3 摘要")]
    picture_file: Annotated[str, Field(description="导出目录中的印模文件名")]
    seal_sm3: Annotated[str, Field(description="DER 编码 SES_Seal 的 SM3 摘要")]
    seal_file: Annotated[str, Field(description="导出目录中的 SES_Seal 文件名")]
    approved_at: dt.datetime | None
    approved_by: str | None
    picture_png: Annotated[str | None, Field(description="印模 PNG（base64）；仅 API 返回")] = None


class SealFiling(BaseModel):
    """The filing (备案) of every active seal, for the provincial seal platform."""

    format: Literal["ecas-seal-filing/1"] = "ecas-seal-filing/1"
    generated_at: dt.datetime
    authority_name: str
    authority_uscc: str
    seals: list[FilingSeal]
