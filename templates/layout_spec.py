"""Template layouts: page size, background, and where each thing goes on the page (all in mm,
origin at the top-left corner, as in OFD). One layout feeds the PDF, OFD and PNG renderers."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DESIGNS", "Box", "TemplateSpec"]

PAGE_SIZES = {
    "A4-landscape": (297.0, 210.0),
    "A4-portrait": (210.0, 297.0),
    "A3-landscape": (420.0, 297.0),
    "A5-landscape": (210.0, 148.0),
    "card": (85.6, 54.0),  # ISO/IEC 7810 ID-1
}
# Fields a template may print besides the face data: the licence's own metadata (GB/T 36903).
META_FIELDS = {
    "licence_number": "证照编号",
    "identifier": "证照标识",
    "issuer_name": "颁证单位",
    "issue_date": "颁证日期",
    "valid_from": "有效期起始日期",
    "valid_until": "有效期截止日期",
    "validity": "有效期",
}
DESIGNS = ("green", "blue", "red", "gold")
COLOUR = r"^#[0-9A-Fa-f]{6}$"

Mm = Annotated[float, Field(ge=0, le=1000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Box(Strict):
    """A rectangle in mm from the top-left corner of the page."""

    x: Mm
    y: Mm
    w: Annotated[float, Field(gt=0, le=1000)]
    h: Annotated[float, Field(gt=0, le=1000)]

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def overlaps(self, other: Box) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def inside(self, width: float, height: float) -> bool:
        return self.right <= width + 1e-6 and self.bottom <= height + 1e-6

    def describe(self) -> str:
        return f"[x={self.x:g}, y={self.y:g}, w={self.w:g}, h={self.h:g}] mm"


class Page(Strict):
    size: Literal["A4-landscape", "A4-portrait", "A3-landscape", "A5-landscape", "card"] | None = None
    width_mm: Annotated[float, Field(ge=50, le=600)] | None = None
    height_mm: Annotated[float, Field(ge=40, le=600)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Page:
        custom = self.width_mm is not None or self.height_mm is not None
        if self.size is not None and custom:
            raise ValueError("page 只能给出 size 或 width_mm/height_mm 之一")
        if self.size is None and (self.width_mm is None or self.height_mm is None):
            raise ValueError("page 须给出 size（如 A4-landscape），或同时给出 width_mm 和 height_mm")
        return self

    @property
    def dimensions(self) -> tuple[float, float]:
        if self.size is not None:
            return PAGE_SIZES[self.size]
        assert self.width_mm is not None and self.height_mm is not None
        return self.width_mm, self.height_mm


class Background(Strict):
    """Either an uploaded picture (its name among the files sent with the template) or a built-in
    generated design (border, guilloche pattern; never a state emblem)."""

    image: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    design: Literal["green", "blue", "red", "gold"] | None = None

    @model_validator(mode="after")
    def _one(self) -> Background:
        if (self.image is None) == (self.design is None):
            raise ValueError(f"background 须给出 image（上传的底图文件名）或 design（{'/'.join(DESIGNS)}）之一")
        return self


class TextStyle(Strict):
    font_size: Annotated[float, Field(ge=4, le=96, description="字号（磅）")] = 12
    font: Literal["serif", "sans"] = "serif"
    align: Literal["left", "center", "right"] = "left"
    colour: Annotated[str, Field(pattern=COLOUR)] = "#1A1A1A"


class StaticText(TextStyle):
    """Fixed text such as the title or a footer note."""

    text: Annotated[str, Field(min_length=1, max_length=200)]
    box: Box
    letter_spacing: Annotated[float, Field(ge=0, le=50, description="字间距（mm）")] = 0


class FieldPlacement(TextStyle):
    """Where a face field (`field`) or a metadata item (`meta`) is printed.

    Long values wrap inside the box; if they still do not fit, the font shrinks down to
    `min_font_size`. `label_width` prints the field's label in a column of that width.
    """

    field: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")] | None = None
    meta: Literal[
        "licence_number", "identifier", "issuer_name", "issue_date", "valid_from", "valid_until", "validity"
    ] | None = None
    box: Box
    min_font_size: Annotated[float, Field(ge=4, le=96)] | None = None
    wrap: bool = True
    label_width: Annotated[float, Field(gt=0, le=200)] | None = None
    line_spacing: Annotated[float, Field(ge=1.0, le=3.0)] = 1.35

    @model_validator(mode="after")
    def _target(self) -> FieldPlacement:
        if (self.field is None) == (self.meta is None):
            raise ValueError("每个 fields 项须给出 field（照面字段 key）或 meta（证照元数据）之一")
        if self.min_font_size is not None and self.min_font_size > self.font_size:
            raise ValueError("min_font_size 不能大于 font_size")
        if self.label_width is not None and self.label_width >= self.box.w:
            raise ValueError("label_width 应小于框宽")
        return self

    @property
    def name(self) -> str:
        return self.field or f"meta:{self.meta}"


class PhotoPlacement(Strict):
    field: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    box: Box


class SquarePlacement(Strict):
    box: Box

    @field_validator("box")
    @classmethod
    def _square(cls, box: Box) -> Box:
        if abs(box.w - box.h) > 0.01:
            raise ValueError(f"框应为正方形，收到 {box.describe()}")
        return box


class TemplateSpec(Strict):
    """One template version of a licence type."""

    page: Page
    background: Background
    texts: list[StaticText] = []
    fields: list[FieldPlacement]
    photo: PhotoPlacement | None = None
    qr: SquarePlacement
    seal: SquarePlacement
    note: Annotated[str, Field(max_length=200)] | None = None  # what changed in this version

    @model_validator(mode="after")
    def _geometry(self) -> TemplateSpec:
        width, height = self.page.dimensions
        problems: list[str] = []
        for name, box in self.boxes():
            if not box.inside(width, height):
                problems.append(f"{name} 超出页面（{width:g}×{height:g} mm）：{box.describe()}")
            if name != "seal" and box.overlaps(self.seal.box):
                problems.append(f"{name} 与印章位置重叠：{box.describe()}")
        if self.qr.box.w < 12:
            problems.append("二维码边长至少 12 mm，否则手机难以识读")
        names = [p.name for p in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"fields 中重复放置：{'、'.join(duplicates)}")
        if problems:
            raise ValueError("；".join(problems))
        return self

    def boxes(self) -> list[tuple[str, Box]]:
        named: list[tuple[str, Box]] = [(f"texts[{i}]「{t.text[:10]}」", t.box) for i, t in enumerate(self.texts)]
        named += [(f"fields「{p.name}」", p.box) for p in self.fields]
        if self.photo is not None:
            named.append((f"photo「{self.photo.field}」", self.photo.box))
        named += [("qr", self.qr.box), ("seal", self.seal.box)]
        return named


def colour_rgb(colour: str) -> tuple[int, int, int]:
    assert re.fullmatch(COLOUR, colour)
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
