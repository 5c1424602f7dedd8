"""Service matters (办事事项): what a department handles for an applicant and which materials it
needs. A material is a licence type (met by a valid licence of that type the applicant holds,
optionally valid for some days after the application date) or something the applicant submits.

Definitions are written like licence types, in YAML or JSON (`registry.spec_input` reads them
strictly), and checked by `MatterSpec` (unknown keys refused). An administrator registers them;
a registered matter never changes (a new code is a new matter), so a case keeps what it was
opened with.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_role
from cert_authority.errors import ConflictError, InvalidRequestError, NotFoundError
from cert_authority.registry.service import RegistryService
from cert_authority.store.audit import audit_row
from cert_authority.store.models import MatterRow
from cert_authority.timeutil import aware, utc_now
from keys.uscc import validate_uscc
from templates.spec import as_value_error, parse_model, validate_type_code

MATTER_CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
MAX_MATERIALS = 15  # the sealed receipt lists them all on one A4 page


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class MaterialConditions(_Strict):
    """What a licence must meet besides being valid on the application date."""

    valid_for_days: Annotated[
        int, Field(ge=0, le=3650, description="申请日后至少仍有效的天数（0：申请日有效即可）")
    ] = 0


class MaterialSpec(_Strict):
    """One required material: a licence type, or (without `licence_type`) submitted by the applicant."""

    name: Annotated[str, Field(min_length=1, max_length=50, description="材料名称")]
    licence_type: Annotated[
        str | None, Field(description="证照类型代码（GB/T 36904）；不填则为申请人提交的材料")
    ] = None
    conditions: MaterialConditions | None = None
    note: Annotated[str | None, Field(max_length=200, description="说明")] = None

    @field_validator("licence_type")
    @classmethod
    def _type_code(cls, value: str | None) -> str | None:
        return None if value is None else as_value_error(validate_type_code, value)

    @model_validator(mode="after")
    def _conditions_need_a_type(self) -> MaterialSpec:
        if self.conditions is not None and self.licence_type is None:
            raise ValueError(f"材料「{self.name}」：只有证照类材料（licence_type）可以设置 conditions")
        return self


class MatterSpec(_Strict):
    """A service matter as an administrator defines it."""

    code: Annotated[str, Field(pattern=MATTER_CODE, description="事项代码（ASCII，至多 40 个字符）")]
    name: Annotated[str, Field(min_length=2, max_length=100, description="事项名称")]
    departments: Annotated[list[str], Field(min_length=1, max_length=20, description="办理部门的统一社会信用代码")]
    materials: Annotated[list[MaterialSpec], Field(min_length=1, max_length=MAX_MATERIALS, description="所需材料")]
    note: Annotated[str | None, Field(max_length=500)] = None

    @field_validator("departments")
    @classmethod
    def _departments(cls, value: list[str]) -> list[str]:
        for uscc in value:
            as_value_error(validate_uscc, uscc)
        if len(set(value)) != len(value):
            raise ValueError("departments 有重复项")
        return value

    @model_validator(mode="after")
    def _distinct_materials(self) -> MatterSpec:
        names = [m.name for m in self.materials]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"材料名称重复：{'、'.join(duplicates)}")
        return self

    @property
    def licence_types(self) -> list[str]:
        return list(dict.fromkeys(m.licence_type for m in self.materials if m.licence_type))


def parse_matter_spec(data: Any) -> MatterSpec:
    return parse_model(MatterSpec, data)


class MaterialPublic(BaseModel):
    name: str
    licence_type: Annotated[str | None, Field(description="证照类型代码；null 为申请人提交的材料")]
    valid_for_days: Annotated[int, Field(description="申请日后至少仍有效的天数")] = 0
    note: str | None = None


class MatterPublic(BaseModel):
    code: str
    name: str
    departments: list[str]
    materials: list[MaterialPublic]
    note: str | None = None
    created_at: dt.datetime


class MatterService:
    def __init__(
        self, engine: Engine, registry: RegistryService, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self._parsed: dict[str, MatterSpec] = {}
        # A registered matter never changes (no update, no delete): read once per process by code.
        self._by_code: dict[str, MatterSpec] = {}

    def register(self, actor: Actor, spec: MatterSpec) -> MatterPublic:
        """Register a matter (administrators): every department and licence type it names must be
        registered; a code already taken is a conflict."""
        ensure_role(actor, "admin")
        problems = []
        for uscc in spec.departments:
            try:
                self.registry.get_department_by_uscc(uscc)
            except NotFoundError as exc:
                problems.append(f"departments：{exc}")
        for code in spec.licence_types:
            try:
                self.registry.type_spec(code)
            except NotFoundError as exc:
                problems.append(f"materials：{exc}")
        if problems:
            raise InvalidRequestError("事项定义有误：" + "；".join(problems))
        # Printed on the sealed receipt: a character the fonts lack is refused now, not at closing.
        for text, where in [(spec.name, "事项名称"), *((m.name, f"材料「{m.name}」") for m in spec.materials)]:
            for font in ("serif", "sans"):
                self.registry.fonts.get(font).check(text, where)
        now = self.clock()
        row = MatterRow(
            code=spec.code,
            name=spec.name,
            spec_json=spec.model_dump_json(exclude_none=True),
            created_at=now,
            created_by=actor.label,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            if session.exec(select(MatterRow.id).where(col(MatterRow.code) == spec.code)).first() is not None:
                raise ConflictError(f"事项代码 {spec.code} 已登记")
            session.add(row)
            session.add(audit_row(actor, "matter_register", f"matter:{spec.code}", now, detail={"name": spec.name}))
            try:
                session.commit()
            except IntegrityError:
                raise ConflictError(f"事项代码 {spec.code} 已登记") from None
        return self._public(row)

    def list(self) -> list[MatterPublic]:
        with Session(self.engine) as session:
            rows = session.exec(select(MatterRow).order_by(col(MatterRow.code))).all()
        return [self._public(r) for r in rows]

    def get(self, code: str) -> MatterPublic:
        return self._public(self._row(code))

    def spec(self, code: str) -> MatterSpec:
        spec = self._by_code.get(code)
        if spec is None:
            spec = self._spec(self._row(code).spec_json)
            if len(self._by_code) > 1000:
                self._by_code.clear()
            self._by_code[code] = spec
        return spec

    def exists(self, code: str) -> bool:
        with Session(self.engine) as session:
            return session.exec(select(MatterRow.id).where(col(MatterRow.code) == code)).first() is not None

    def _row(self, code: str) -> MatterRow:
        with Session(self.engine) as session:
            row = session.exec(select(MatterRow).where(col(MatterRow.code) == code)).first()
        if row is None:
            raise NotFoundError(f"事项 {code} 尚未登记")
        return row

    def _spec(self, spec_json: str) -> MatterSpec:
        spec = self._parsed.get(spec_json)
        if spec is None:
            if len(self._parsed) > 1000:
                self._parsed.clear()
            spec = self._parsed[spec_json] = MatterSpec.model_validate(json.loads(spec_json))
        return spec

    def _public(self, row: MatterRow) -> MatterPublic:
        spec = self._spec(row.spec_json)
        materials = [
            MaterialPublic(
                name=m.name,
                licence_type=m.licence_type,
                valid_for_days=m.conditions.valid_for_days if m.conditions else 0,
                note=m.note,
            )
            for m in spec.materials
        ]
        return MatterPublic(
            code=spec.code,
            name=spec.name,
            departments=spec.departments,
            materials=materials,
            note=spec.note,
            created_at=aware(row.created_at),
        )
