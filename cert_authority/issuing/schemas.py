"""What issuance and the licence lifecycle take and give, shared by the HTTP API
and the CLI (`--json`): `ThingCreate` comes in, `ThingPublic` goes out."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cert_authority.errors import InvalidRequestError

LICENCE_STATUSES = ("issued", "superseded", "revoked", "cancelled", "expired")
STATUS_NAMES = {
    "issued": "有效",
    "superseded": "已变更",
    "revoked": "已吊销",
    "cancelled": "已注销",
    "expired": "已过期",
}
FILE_FORMATS = ("pdf", "ofd", "png")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def decode_base64(value: str | None, what: str) -> bytes | None:
    """Uploaded pictures arrive as base64 in JSON bodies (standard alphabet, padding optional)."""
    if value is None:
        return None
    text = "".join(value.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{what}：不是有效的 base64 编码") from None


class LicenceIssue(_Input):
    """A licence to issue. `data` holds the face fields by key; the holder's name and code are
    among them (the type says which)."""

    type_code: Annotated[str, Field(description="证照类型代码（21位）")]
    data: Annotated[dict[str, Any], Field(description="照面信息：字段 key → 值")]
    photo: Annotated[str, Field(description="持证人照片 PNG/JPEG（base64），类型有照片字段时")] | None = None
    valid_from: Annotated[dt.date, Field(description="有效期起始日期（仅有效期在颁证时给出的类型）")] | None = None
    valid_until: Annotated[dt.date, Field(description="有效期截止日期（仅有效期在颁证时给出的类型）")] | None = None
    issuer_uscc: Annotated[str, Field(description="颁证部门（仅管理员代为颁证时给出）")] | None = None
    origin: Annotated[
        Literal["new", "stock", "paper_twin"],
        Field(description="new 新办；stock 存量转换（给出原证编号、日期）；paper_twin 纸质证照同步制发（给出编号）"),
    ] = "new"
    licence_number: Annotated[str, Field(description="证照编号（仅 stock、paper_twin）")] | None = None
    issue_date: Annotated[dt.date, Field(description="原证颁证日期（仅 stock，不能晚于今天）")] | None = None
    original_issuer_name: Annotated[str, Field(description="原颁证单位名称（仅 stock，与本部门不同时）")] | None = None
    include_expired: Annotated[bool, Field(description="仅 stock：原证已过期的也转换入库（状态为已过期）")] = False


class LicenceChange(_Input):
    """A change (变更): `data` is merged into the current face data (RFC 7396: null removes an
    optional field); the licence gets a new version with the same serial."""

    data: Annotated[dict[str, Any], Field(description="要变更的照面字段：key → 新值（null 删除选填字段）")] = {}
    photo: Annotated[str, Field(description="新照片（base64）；不给出则沿用原照片")] | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    reason: Annotated[str, Field(max_length=500, description="变更事由")] | None = None


class LicenceStatusChange(_Input):
    """Revoke (吊销) or cancel (注销): the reason is required and kept in the history."""

    reason: Annotated[str, Field(min_length=1, max_length=500, description="吊销或注销的原因")]


class IssuerPublic(BaseModel):
    name: str
    code: str
    level: str


class HolderPublic(BaseModel):
    name: str
    code: str
    code_type: Annotated[str, Field(description="持证主体代码类型：111 居民身份证号码，001 统一社会信用代码")]


class SealingPublic(BaseModel):
    seal_id: int
    seal_name: str
    sealed_by: str
    sealed_at: dt.datetime


class LicenceFilesPublic(BaseModel):
    pdf: Annotated[str, Field(description="盖章 PDF 的 SM3 摘要")]
    ofd: Annotated[str, Field(description="盖章 OFD 的 SM3 摘要")]
    png: Annotated[str | None, Field(description="手机展示用 PNG 的 SM3 摘要（首次下载时生成，之前为空）")] = None


class LicencePublic(BaseModel):
    """One version of a licence, with its face data (the holder's code in full: only the issuer and
    auditors read this)."""

    identifier: Annotated[str, Field(description="证照标识（GB/T 36904）")]
    name: str
    type_code: str
    licence_number: Annotated[str, Field(description="证照编号")]
    version: int
    issuer: IssuerPublic
    issue_date: dt.date
    holder: HolderPublic
    valid_from: dt.date
    valid_until: Annotated[dt.date | None, Field(description="有效期截止日期；null 为长期有效")]
    status: Annotated[str, Field(description="issued、superseded、revoked、cancelled、expired")]
    status_reason: str | None
    status_changed_at: dt.datetime
    superseded_by: str | None
    seal: SealingPublic
    template_version: int
    data: dict[str, str]
    photo_sm3: str | None
    files: LicenceFilesPublic
    created_at: dt.datetime
    created_by: str
    metadata: Annotated[dict[str, str | None], Field(description="GB/T 36903 元数据（ZZMC、ZZBS 等代码）")]
    origin: Annotated[str, Field(description="new 新办、stock 存量转换、paper_twin 纸质证照同步制发")] = "new"
    original_issuer_name: Annotated[str | None, Field(description="存量证照的原颁证单位（与颁证部门不同时）")] = None


class LicenceSummary(BaseModel):
    """A licence in a list: metadata only, the holder's code masked."""

    identifier: str
    name: str
    type_code: str
    licence_number: str
    version: int
    issuer_code: str
    issuer_name: str
    issue_date: dt.date
    holder_name: str
    holder_code: Annotated[str, Field(description="持证主体代码（已脱敏）")]
    holder_code_type: str
    valid_from: dt.date
    valid_until: dt.date | None
    status: str
    origin: str = "new"


class LicencePage(BaseModel):
    total: int
    page: Annotated[int, Field(description="按页码翻页时的页码（以 cursor/before 翻页时为 1）")]
    page_size: int
    items: list[LicenceSummary]
    next_cursor: Annotated[
        str | None, Field(description="下一页：作为 cursor 传回；没有更多时为 null（键集分页，深翻页不变慢）")
    ] = None
    prev_cursor: Annotated[str | None, Field(description="上一页：作为 before 传回；已是第一页时为 null")] = None


class LicenceEventPublic(BaseModel):
    identifier: str
    action: Annotated[str, Field(description="issue 颁发、change 变更、revoke 吊销、cancel 注销、expire 到期")]
    previous_status: str | None
    status: str
    reason: str | None
    at: dt.datetime
    actor: str
    derived: Annotated[bool, Field(description="true：由有效期推得（到期），不是一次操作")] = False
