"""Checking the face data (照面信息) of a licence against its type before anything is stored:
every field with `FaceField.check_value`, the holder's code by its code type (GB 11643 citizen ID
number with a real birth date, GB 32100 USCC), the photo. All problems are collected, each naming
the field's key and label, so one answer tells the caller everything to fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keys.errors import InvalidCodeError
from templates.errors import ImageError
from templates.identifier import validate_holder_code
from templates.images import Picture, load_picture
from templates.spec import HOLDER_CODE_TYPES, FieldType, LicenceTypeSpec

PHOTO_MAX_BYTES = 2 * 1024 * 1024  # an ID photo is tens of kilobytes; 2 MB leaves room for scans
PHOTO_MAX_SIDE = 800  # pixels: well above what a 35×45 mm box needs at print resolution


@dataclass(frozen=True)
class CheckedFace:
    values: dict[str, str]  # canonical stored values, by field key (photo excluded)
    holder_name: str
    holder_code: str
    holder_code_type: str  # GB/T 36903 CZZTDMLX: 111, 001
    photo: Picture | None


def photo_field(spec: LicenceTypeSpec) -> str | None:
    return next((f.key for f in spec.fields if f.type is FieldType.PHOTO), None)


def check_face(
    spec: LicenceTypeSpec, data: Any, photo: bytes | Picture | None
) -> tuple[CheckedFace | None, list[str]]:
    """The checked face data, or None and the list of problems. `photo` is an upload (bytes) or a
    picture checked earlier (a change re-uses the licence's photo)."""
    if not isinstance(data, Mapping):
        return None, ["data：照面信息应为 JSON 对象（字段 key → 值）"]
    problems: list[str] = []
    photo_key = photo_field(spec)
    known = {f.key for f in spec.fields}
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        listed = "、".join(f.key for f in spec.fields if f.type is not FieldType.PHOTO)
        problems.append(f"未知字段：{'、'.join(unknown)}（证照类型 {spec.code} 的字段为：{listed}）")
    values: dict[str, str] = {}
    for field in spec.fields:
        if field.type is FieldType.PHOTO:
            if field.key in data:
                problems.append(f"{field.key}「{field.label}」：照片应通过 photo 上传，不能放在 data 中")
            continue
        raw = data.get(field.key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if field.required:
                problems.append(f"{field.key}「{field.label}」：缺少必填字段")
            continue
        try:
            values[field.key] = field.check_value(raw)
        except ValueError as exc:
            problems.append(f"{field.key}：{exc}")

    code_type = None
    code = values.get(spec.holder.code_field)
    if code is not None:
        code_type, problem = _holder_code_type(spec, code)
        if problem:
            problems.append(problem)

    picture = None
    if photo_key is None:
        if photo is not None:
            problems.append(f"photo：证照类型 {spec.code} 没有照片字段，不应上传照片")
    elif photo is None:
        if spec.field(photo_key).required:  # type: ignore[union-attr]
            problems.append(f"photo：缺少照片（字段 {photo_key}，必填）")
    elif isinstance(photo, Picture):
        picture = photo
    elif len(photo) > PHOTO_MAX_BYTES:
        problems.append(f"photo：照片过大（{len(photo) / 1048576:.1f} MB），上限 {PHOTO_MAX_BYTES // 1048576} MB")
    else:
        try:
            picture = load_picture(photo, "照片", PHOTO_MAX_SIDE)
        except ImageError as exc:
            problems.append(f"photo：{exc}")

    if problems:
        return None, problems
    assert code is not None and code_type is not None
    return (
        CheckedFace(
            values=values,
            holder_name=values[spec.holder.name_field],
            holder_code=code,
            holder_code_type=code_type,
            photo=picture,
        ),
        [],
    )


def _holder_code_type(spec: LicenceTypeSpec, code: str) -> tuple[str | None, str | None]:
    """The first of the type's holder code types the code is valid as, or the problem."""
    failures = []
    for code_type in spec.holder.code_types:
        try:
            validate_holder_code(code_type, code)
        except InvalidCodeError as exc:
            failures.append((code_type, str(exc)))
            continue
        return code_type, None
    field = spec.field(spec.holder.code_field)
    label = field.label if field else spec.holder.code_field
    if len(failures) == 1:
        detail = failures[0][1]
    else:
        detail = "；".join(f"按{HOLDER_CODE_TYPES[t]}（{t}）：{m}" for t, m in failures)
    return None, f"{spec.holder.code_field}「{label}」：持证主体代码无效：{detail}"
