"""What seal registration takes and gives, shared by the HTTP API and the CLI (`--json`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keys.errors import InvalidCodeError
from keys.uscc import validate_uscc


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SealCreate(_Input):
    """A seal to register (电子印章备案). Without `picture`, the standard round red seal is drawn:
    the department's name along the arc, a star, `purpose` on the bottom line, `diameter_mm` across."""

    department_uscc: Annotated[str, Field(description="用章部门的统一社会信用代码")]
    name: Annotated[str, Field(min_length=2, max_length=200, description="印章名称，如 某局电子证照专用章")]
    seal_type: Annotated[Literal[1, 2], Field(description="印章类型：1 单位印章，2 个人印章（GB/T 38540）")] = 1
    purpose: Annotated[str, Field(min_length=1, max_length=14, description="印章用途（印在星下）")] | None = None
    picture: Annotated[str, Field(description="上传的印模 PNG（base64）；不给出则按部门名称生成圆形印章")] | None = None
    diameter_mm: Annotated[float, Field(ge=20, le=80, description="印章直径（毫米）；上传图片时为其宽度")] = 42
    valid_start: Annotated[dt.date, Field(description="印章有效期起始日期（默认为印章证书的起始）")] | None = None
    valid_end: Annotated[dt.date, Field(description="印章有效期截止日期（默认为印章证书的截止）")] | None = None

    @field_validator("department_uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        try:
            return validate_uscc(value)
        except InvalidCodeError as exc:
            raise ValueError(str(exc)) from None


class SealRevoke(_Input):
    reason: Annotated[
        str, Field(description="RFC 5280 吊销原因：keyCompromise、superseded、cessationOfOperation 等")
    ] = "cessationOfOperation"
    note: Annotated[str, Field(max_length=200, description="说明")] | None = None


class SealPublic(BaseModel):
    id: int
    department_uscc: str
    department_name: str
    es_id: Annotated[str, Field(description="印章编码（GB/T 38540 esID）")]
    name: str
    seal_type: int
    purpose: str | None
    cert_serial: Annotated[str, Field(description="印章证书序列号（十六进制）")]
    seal_sm3: Annotated[str, Field(description="DER 编码 SES_Seal 的 SM3 摘要")]
    picture_sm3: str
    width_mm: int
    height_mm: int
    valid_start: dt.datetime
    valid_end: dt.datetime
    status: Annotated[str, Field(description="active 有效、revoked 已吊销、expired 已过期")]
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    revocation_note: str | None
    created_at: dt.datetime
    created_by: str
