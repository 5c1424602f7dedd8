"""What the registry of departments and licence types takes and gives, shared by the HTTP API
(request and response models) and the CLI (`--json` output): `ThingCreate` comes in, `ThingPublic` goes out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keys.errors import InvalidCodeError
from keys.uscc import validate_uscc

DEPARTMENT_ROLES = ("issuer", "user")
LEVELS = ("province", "city", "district")


class DepartmentCreate(BaseModel):
    """A department to register. `roles`: issuer (颁证部门) and/or user (用证部门)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=2, max_length=100, description="部门名称")]
    uscc: Annotated[str, Field(description="统一社会信用代码（18位，GB 32100）")]
    area_code: Annotated[str, Field(pattern=r"^[0-9]{6}$", description="行政区划代码（6位，GB/T 2260）")]
    level: Literal["province", "city", "district"]
    roles: Annotated[list[Literal["issuer", "user"]], Field(min_length=1)]
    contact: Annotated[str, Field(max_length=200, description="联系人、电话等")] | None = None

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        try:
            return validate_uscc(value)
        except InvalidCodeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("roles")
    @classmethod
    def _canonical_roles(cls, value: list[str]) -> list[str]:
        return [role for role in DEPARTMENT_ROLES if role in value]


class DepartmentPublic(BaseModel):
    id: int
    name: str
    uscc: str
    area_code: str
    level: str
    roles: list[str]
    contact: str | None
    created_at: dt.datetime


class AuthorityPublic(BaseModel):
    name: str
    uscc: str


class TemplateVersionPublic(BaseModel):
    """One immutable template version of a licence type."""

    version: int
    note: str | None
    background_sm3: Annotated[str, Field(description="底图 JPEG 的 SM3 摘要（十六进制）")]
    created_at: dt.datetime
    created_by: str
    template: Annotated[dict[str, Any], Field(description="模板定义（TemplateSpec）")]


class LicenceTypePublic(BaseModel):
    code: Annotated[str, Field(description="证照类型代码（21位，GB/T 36904）")]
    name: str
    defining_authority: AuthorityPublic
    issuer_level: str
    holder_category: str
    issuers: Annotated[list[str], Field(description="可颁发此类证照的部门统一社会信用代码")]
    latest_version: int
    created_at: dt.datetime
    created_by: str
    spec: Annotated[dict[str, Any], Field(description="证照类型定义（LicenceTypeSpec，不含模板）")]


class LicenceTypeDetail(LicenceTypePublic):
    versions: list[TemplateVersionPublic]
