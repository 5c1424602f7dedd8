"""Where a seal goes on a page: a box in millimetres from the page's top-left corner, the way OFD
(GB/T 33190 §5.1: page space, origin top-left, y down, unit mm) and our templates place things.
PDF user space has its origin bottom-left, y up, unit 1/72 inch: `to_pdf_rect` converts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from seals.errors import DocumentError, SealInputError
from templates.ofd import ofd_numbers

__all__ = ["SealBox"]

MM_PER_PT = 25.4 / 72
MAX_SIDE_MM = 1000.0


class _BoxLike(Protocol):
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class SealBox:
    """A rectangle in mm from the top-left corner of the page."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SealInputError(f"印章位置 {name} 必须是有限的数值（毫米），收到 {value!r}")
        if not (0 < self.w <= MAX_SIDE_MM and 0 < self.h <= MAX_SIDE_MM):
            raise SealInputError(f"印章大小须大于 0 且不超过 {MAX_SIDE_MM:g} 毫米，收到 {self.w:g}×{self.h:g}")
        if self.x < 0 or self.y < 0:
            raise SealInputError(f"印章位置不能为负数，收到 x={self.x:g}, y={self.y:g}")

    @classmethod
    def of(cls, value: SealBox | _BoxLike | tuple[float, float, float, float]) -> SealBox:
        """From a SealBox, anything with x/y/w/h (e.g. a template's Box) or an (x, y, w, h) tuple."""
        if isinstance(value, SealBox):
            return value
        if isinstance(value, tuple | list):
            if len(value) != 4:
                raise SealInputError("印章位置应为 (x, y, 宽, 高) 四个数（毫米）")
            return cls(*value)
        try:
            return cls(value.x, value.y, value.w, value.h)
        except AttributeError:
            raise SealInputError("印章位置应为 (x, y, 宽, 高) 四个数（毫米）") from None

    def check_inside(self, page_width_mm: float, page_height_mm: float) -> None:
        if self.x + self.w > page_width_mm + 1e-6 or self.y + self.h > page_height_mm + 1e-6:
            raise DocumentError(
                f"印章位置 [x={self.x:g}, y={self.y:g}, 宽={self.w:g}, 高={self.h:g}] 毫米超出页面"
                f"（{page_width_mm:g}×{page_height_mm:g} 毫米）"
            )

    def to_pdf_rect(
        self, page_height_pt: float, origin_x_pt: float = 0.0, origin_y_pt: float = 0.0
    ) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) in PDF points, origin bottom-left, for a page `page_height_pt` high whose
        visible box starts at (origin_x_pt, origin_y_pt)."""
        x1 = origin_x_pt + self.x / MM_PER_PT
        x2 = origin_x_pt + (self.x + self.w) / MM_PER_PT
        y2 = origin_y_pt + page_height_pt - self.y / MM_PER_PT
        y1 = origin_y_pt + page_height_pt - (self.y + self.h) / MM_PER_PT
        return (round(x1, 3), round(y1, 3), round(x2, 3), round(y2, 3))

    def ofd_boundary(self) -> str:
        """ "x y w h" as OFD's ST_Box (GB/T 33190 表 2), without needless decimals."""
        return ofd_numbers(self.x, self.y, self.w, self.h)
