"""Licence-type definitions (证照类型): identity, holder and validity policy, face-field schema.

A definition is data a department writes (YAML or JSON) and the registry stores. Everything is
checked when it is built: unknown keys, wrong check characters, bad patterns, duplicate keys.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keys.errors import InvalidCodeError
from keys.uscc import validate_uscc
from templates.errors import SpecError
from templates.layout_spec import TemplateSpec

__all__ = [
    "HOLDER_CODE_TYPES",
    "FieldType",
    "LicenceTypeSpec",
    "ValidityPolicy",
    "as_value_error",
    "check_template",
    "chinese_date",
    "parse_model",
    "problem_text",
    "validate_type_code",
]

# GB/T 36903 annex: holder code types. Only the ones we can check are accepted for now.
HOLDER_CODE_TYPES = {"111": "居民身份证号码", "001": "统一社会信用代码"}
FIELD_KEY = r"^[a-z][a-z0-9_]{0,39}$"
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FieldType(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    DATE = "date"
    DATE_RANGE = "date_range"
    NUMBER = "number"
    ENUM = "enum"
    PHOTO = "photo"


TEXT_TYPES = {FieldType.TEXT, FieldType.LONG_TEXT}


class FaceField(Strict):
    """One field printed on the licence face (照面信息)."""

    key: Annotated[str, Field(pattern=FIELD_KEY)]
    label: Annotated[str, Field(min_length=1, max_length=20)]
    type: FieldType
    required: bool = True
    min_length: Annotated[int, Field(ge=0, le=4000)] | None = None
    max_length: Annotated[int, Field(ge=1, le=4000)] | None = None
    pattern: str | None = None
    values: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    disclosable: bool = False  # the holder may disclose this field alone when showing the licence
    example: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FaceField:
        name = f"字段 {self.key}"
        if self.pattern is not None:
            if self.type not in TEXT_TYPES:
                raise ValueError(f"{name}：只有 text/long_text 类型可以设置 pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"{name}：pattern 不是有效的正则表达式（{exc}）") from None
        if (self.min_length is not None or self.max_length is not None) and self.type not in TEXT_TYPES:
            raise ValueError(f"{name}：只有 text/long_text 类型可以设置长度限制")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"{name}：min_length 大于 max_length")
        if self.type is FieldType.ENUM:
            if not self.values:
                raise ValueError(f"{name}：enum 类型须列出 values")
            if len(set(self.values)) != len(self.values):
                raise ValueError(f"{name}：values 有重复项")
        elif self.values is not None:
            raise ValueError(f"{name}：只有 enum 类型可以设置 values")
        if (self.min_value is not None or self.max_value is not None) and self.type is not FieldType.NUMBER:
            raise ValueError(f"{name}：只有 number 类型可以设置 min_value/max_value")
        if self.example is not None:
            self.check_value(self.example)
        return self

    @property
    def longest(self) -> int:
        """Upper bound on the printed length in characters, used to prove the layout fits."""
        if self.type in TEXT_TYPES:
            return self.max_length or (50 if self.type is FieldType.TEXT else 500)
        if self.type is FieldType.ENUM:
            return max(len(v) for v in self.values or [""])
        if self.type is FieldType.DATE:
            return len("2000年12月31日")
        if self.type is FieldType.DATE_RANGE:
            return len("2000年12月31日至2000年12月31日")
        if self.type is FieldType.NUMBER:
            return 20
        return 0

    def check_value(self, value: Any) -> str:
        """Return the canonical stored form of `value`, or raise ValueError in Chinese."""
        name = f"「{self.label}」"
        if self.type is FieldType.PHOTO:
            raise ValueError(f"{name}是照片字段，应上传图片")
        if not isinstance(value, str | int | float | Decimal) or isinstance(value, bool):
            raise ValueError(f"{name}应为文本")
        text = str(value).replace("\r\n", "\n").strip()
        controls = sorted({c for c in text if unicodedata.category(c) == "Cc" and c != "\n"})
        if controls:
            raise ValueError(f"{name}含控制字符 {', '.join(f'U+{ord(c):04X}' for c in controls)}")
        if self.type in TEXT_TYPES:
            if self.min_length is not None and len(text) < self.min_length:
                raise ValueError(f"{name}至少 {self.min_length} 个字符")
            if len(text) > self.longest:
                raise ValueError(f"{name}最多 {self.longest} 个字符，收到 {len(text)} 个")
            if self.type is FieldType.TEXT and "\n" in text:
                raise ValueError(f"{name}不能换行")
            if self.pattern is not None and not re.fullmatch(self.pattern, text):
                raise ValueError(f"{name}格式不符合要求")
            return text
        if self.type is FieldType.DATE:
            return parse_date(text, name).isoformat()
        if self.type is FieldType.DATE_RANGE:
            start, sep, end = text.partition("/")
            if not sep:
                raise ValueError(f"{name}应写作 起始日期/截止日期，如 2026-01-01/2030-12-31")
            first, last = parse_date(start, name), parse_date(end, name)
            if last < first:
                raise ValueError(f"{name}截止日期早于起始日期")
            return f"{first.isoformat()}/{last.isoformat()}"
        if self.type is FieldType.NUMBER:
            try:
                number = Decimal(text)
            except InvalidOperation:
                raise ValueError(f"{name}应为数字") from None
            if not number.is_finite():
                raise ValueError(f"{name}应为数字")
            if self.min_value is not None and number < self.min_value:
                raise ValueError(f"{name}不能小于 {self.min_value}")
            if self.max_value is not None and number > self.max_value:
                raise ValueError(f"{name}不能大于 {self.max_value}")
            return text
        if self.type is FieldType.ENUM:
            if text not in (self.values or []):
                raise ValueError(f"{name}取值无效，可选：{'、'.join(self.values or [])}")
            return text
        raise AssertionError(self.type)

    def printed(self, stored: str) -> str:
        """How a stored value reads on the licence face."""
        if self.type is FieldType.DATE:
            return chinese_date(dt.date.fromisoformat(stored))
        if self.type is FieldType.DATE_RANGE:
            start, _, end = stored.partition("/")
            return f"{chinese_date(dt.date.fromisoformat(start))}至{chinese_date(dt.date.fromisoformat(end))}"
        return stored


def parse_date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}日期无效：{text!r}（应为 YYYY-MM-DD）") from None


def chinese_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


class Authority(Strict):
    name: Annotated[str, Field(min_length=2, max_length=100)]
    uscc: str

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        return as_value_error(validate_uscc, value)


class HolderPolicy(Strict):
    category: Literal["natural_person", "legal_person", "other"]
    code_types: Annotated[list[str], Field(min_length=1)]
    name_field: str  # face field holding the holder's name
    code_field: str  # face field holding the holder's code (ID number, USCC)

    @field_validator("code_types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in HOLDER_CODE_TYPES]
        if unknown:
            known = "、".join(f"{k}（{v}）" for k, v in HOLDER_CODE_TYPES.items())
            raise ValueError(f"不支持的持证主体代码类型 {unknown}，可选：{known}")
        return value


class ValidityPolicy(Strict):
    kind: Literal["fixed_term", "long_term", "given_at_issue"]
    years: Annotated[int, Field(ge=0, le=100)] = 0
    months: Annotated[int, Field(ge=0, le=1200)] = 0

    @model_validator(mode="after")
    def _term(self) -> ValidityPolicy:
        if self.kind == "fixed_term" and self.years == 0 and self.months == 0:
            raise ValueError("fixed_term 有效期须给出 years 或 months")
        if self.kind != "fixed_term" and (self.years or self.months):
            raise ValueError(f"{self.kind} 有效期不能设置 years/months")
        return self


class LicenceTypeSpec(Strict):
    """A licence type as a department defines it; `template` is its first template version."""

    code: Annotated[str, Field(description="证照类型代码：定义机关统一社会信用代码 + 3 位顺序码")]
    name: Annotated[str, Field(min_length=2, max_length=50)]
    defining_authority: Authority
    issuers: Annotated[list[str], Field(min_length=1, description="可颁发此类证照的部门统一社会信用代码")]
    issuer_level: Literal["province", "city", "district"]
    holder: HolderPolicy
    validity: ValidityPolicy
    fields: Annotated[list[FaceField], Field(min_length=1, max_length=60)]
    template: TemplateSpec | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return as_value_error(validate_type_code, value)

    @field_validator("issuers")
    @classmethod
    def _issuers(cls, value: list[str]) -> list[str]:
        for uscc in value:
            as_value_error(validate_uscc, uscc)
        if len(set(value)) != len(value):
            raise ValueError("issuers 有重复项")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LicenceTypeSpec:
        if self.code[:18] != self.defining_authority.uscc:
            raise ValueError(
                f"证照类型代码前 18 位应为定义机关的统一社会信用代码 {self.defining_authority.uscc}，"
                f"实为 {self.code[:18]}"
            )
        keys = [f.key for f in self.fields]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"字段 key 重复：{'、'.join(duplicates)}")
        for role, key in (("name_field", self.holder.name_field), ("code_field", self.holder.code_field)):
            field = self.field(key)
            if field is None:
                raise ValueError(f"holder.{role} 指向不存在的字段 {key}")
            if field.type is not FieldType.TEXT or not field.required:
                raise ValueError(f"holder.{role} 指向的字段 {key} 应为必填的 text 字段")
        if self.template is not None:
            problems = template_problems(self, self.template)
            if problems:
                raise ValueError("；".join(problems))
        return self

    def field(self, key: str) -> FaceField | None:
        return next((f for f in self.fields if f.key == key), None)


def check_template(licence_type: LicenceTypeSpec, template: TemplateSpec) -> None:
    """Raise SpecError unless `template` places every face field of `licence_type` exactly once."""
    problems = template_problems(licence_type, template)
    if problems:
        raise SpecError(problems)


def template_problems(licence_type: LicenceTypeSpec, template: TemplateSpec) -> list[str]:
    problems = []
    placed = {p.field for p in template.fields if p.field is not None}
    for key in sorted(placed):
        field = licence_type.field(key)
        if field is None:
            problems.append(f"模板放置了不存在的字段 {key}")
        elif field.type is FieldType.PHOTO:
            problems.append(f"照片字段 {key} 应放在 photo 中，不能放在 fields 中")
    photos = [f.key for f in licence_type.fields if f.type is FieldType.PHOTO]
    if template.photo is not None and template.photo.field not in photos:
        problems.append(f"photo 指向的 {template.photo.field} 不是照片字段")
    if len(photos) > 1:
        problems.append("每类证照最多一个照片字段")
    if photos and (template.photo is None or template.photo.field != photos[0]):
        problems.append(f"照片字段 {photos[0]} 没有在模板中放置（photo）")
    missing = [f.key for f in licence_type.fields if f.type is not FieldType.PHOTO and f.key not in placed]
    if missing:
        problems.append(f"以下照面字段没有在模板中放置：{'、'.join(missing)}")
    return problems


def as_value_error(check: Callable[[str], str], value: str) -> str:
    """pydantic reports ValueErrors as validation errors; code checks raise InvalidCodeError."""
    try:
        return check(value)
    except InvalidCodeError as exc:
        raise ValueError(str(exc)) from None


def validate_type_code(code: str) -> str:
    """GB/T 36904: type code = USCC of the defining authority (18) + 3-digit sequence."""
    if not isinstance(code, str) or len(code) != 21:
        raise InvalidCodeError(f"证照类型代码应为21位，收到 {len(code) if isinstance(code, str) else 0} 位")
    if not code[18:].isdigit() or not code[18:].isascii():
        raise InvalidCodeError(f"证照类型代码后3位应为数字，收到 {code[18:]!r}")
    try:
        validate_uscc(code[:18])
    except InvalidCodeError as exc:
        raise InvalidCodeError(f"证照类型代码前18位：{exc}") from None
    return code


def parse_model(model: type[M], data: Any) -> M:
    """Build `model` from user data, turning pydantic's errors into one SpecError naming each problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_describe(err) for err in exc.errors()]) from None


_MESSAGES = {  # pydantic's problems in the user's language, with what its context says
    "extra_forbidden": "未知的键",
    "missing": "缺少必填项",
    "string_too_short": "太短（至少 {min_length} 个字符）",
    "string_too_long": "太长（至多 {max_length} 个字符）",
    "too_short": "项数太少（至少 {min_length} 项）",
    "too_long": "项数太多（至多 {max_length} 项）",
    "string_pattern_mismatch": "格式不对（应符合 {pattern}）",
    "string_type": "应为文本",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_type": "应为日期（YYYY-MM-DD）",
    "greater_than_equal": "应不小于 {ge}",
    "less_than_equal": "应不大于 {le}",
    "greater_than": "应大于 {gt}",
    "less_than": "应小于 {lt}",
    "json_invalid": "不是有效的 JSON",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "list_type": "应为列表",
}


def problem_text(error: Any) -> str:
    """One pydantic problem (an item of `ValidationError.errors()`) as the user reads it: our own
    validators' text, else the common kinds in Chinese, else pydantic's English."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind in {"literal_error", "enum"}:
        return f"取值无效，可选：{context.get('expected', error['msg'])}"
    try:
        return _MESSAGES[kind].format(**context)
    except (KeyError, IndexError):
        return str(error["msg"])


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(根)"
    return f"{where}：{problem_text(error)}"
