"""CJK fonts: where they come from, their metrics, and subsets to embed in PDF and OFD files.

The default fonts are Noto Serif SC and Noto Sans SC (SIL OFL 1.1), installed from PyPI with the
project (package `pylopdf-fonts-zh-cn`), so Chinese renders right after `pip install`. A character
the font cannot draw is an error naming it, never a tofu box.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path

from fontTools.ttLib import TTFont, TTLibError

from templates.cff_subset import CffSubsetter, SubsetFont
from templates.errors import FontError, MissingGlyphError

__all__ = ["FontSet", "SubsetFont", "subsetter_from_bytes"]

# Characters every licence font must have; a font without them is not a Chinese font.
PROBE = "中华人民共和国证照许可有效期至年月日统一社会信用代码"
INSTALL_HINT = "请用 pip install -e . 安装项目（会安装 pylopdf-fonts-zh-cn），或设置 ECAS_FONT_SERIF / ECAS_FONT_SANS"


class Font:
    """One font file: metrics for layout, coverage checks and subsets for embedding."""

    def __init__(self, role: str, path: Path) -> None:
        self.role = role
        self.path = path
        try:
            font = TTFont(str(path), lazy=True)
            self._cmap: dict[int, str] = font.getBestCmap() or {}
            hmtx = font["hmtx"]
            self.units_per_em: int = font["head"].unitsPerEm
            # Typographic (em-box) metrics: where the glyphs sit, not the line gap.
            self.ascent: float = font["OS/2"].sTypoAscender / self.units_per_em
            self.descent: float = -font["OS/2"].sTypoDescender / self.units_per_em
            self.postscript_name = str(font["name"].getDebugName(6) or path.stem)
            self._advance: dict[int, float] = {cp: hmtx[name][0] / self.units_per_em for cp, name in self._cmap.items()}
        except (OSError, TTLibError, KeyError, AttributeError) as exc:
            raise FontError(f"无法读取字体文件 {path}：{exc}。{INSTALL_HINT}") from None
        if "CFF " not in font:
            raise FontError(f"字体 {path} 不是 CFF 轮廓的 OpenType 字体（.otf），暂不支持")
        missing = self.missing(PROBE)
        if missing:
            raise FontError(f"字体 {path} 不含中文字符（缺 {''.join(missing)}）。{INSTALL_HINT}")
        # Subsets are cut directly from the CFF (templates.cff_subset): ~0.3 ms, where the
        # fontTools subsetter takes ~250 ms per call, too slow for the issuance path.
        self._subsetter = CffSubsetter(path)

    def has(self, char: str) -> bool:
        return ord(char) in self._cmap

    def missing(self, text: str) -> list[str]:
        return sorted({c for c in text if c != "\n" and ord(c) not in self._cmap})

    def check(self, text: str, where: str) -> None:
        missing = self.missing(text)
        if missing:
            shown = "、".join(f"「{c}」(U+{ord(c):04X})" for c in missing[:5])
            raise MissingGlyphError(f"{where}含字体无法显示的字符 {shown}")

    def advance(self, char: str) -> float:
        """Advance width in em."""
        return self._advance.get(ord(char), 1.0)

    def width(self, text: str) -> float:
        return sum(map(self._advance.get, map(ord, text), repeat(1.0)))  # 1 em for an unknown character

    def subset(self, chars: Iterable[str]) -> SubsetFont:
        return self._subset(self.subset_chars(chars))

    @staticmethod
    def subset_chars(chars: Iterable[str]) -> frozenset[str]:
        """The characters `subset` cuts for `chars`: `CffSubsetter(font file).subset(this)` is the
        same subset (a store can recompute it from the font file)."""
        # Line breaks are not drawn; other spaces (U+3000 too) are glyphs with a width.
        if isinstance(chars, frozenset) and " " in chars and "\n" not in chars:
            return chars  # already what it would become (a layout's characters, asked for again)
        return frozenset(c for c in chars if c != "\n") | {" "}

    @functools.lru_cache(maxsize=64)  # noqa: B019 - fonts live as long as the process
    def _subset(self, chars: frozenset[str]) -> SubsetFont:
        self.check("".join(chars), "文本")
        return self._subsetter.subset(chars)


class FontSet:
    """The serif (宋体-like, for values) and sans (黑体-like, for labels and titles) fonts."""

    def __init__(self, serif: Path, sans: Path) -> None:
        self.serif = Font("serif", serif)
        self.sans = Font("sans", sans)

    def get(self, role: str) -> Font:
        if role == "serif":
            return self.serif
        if role == "sans":
            return self.sans
        raise FontError(f"未知字体 {role!r}，可选：serif、sans")

    @classmethod
    def from_paths(cls, serif: Path | None = None, sans: Path | None = None) -> FontSet:
        """Explicit paths win; otherwise the fonts installed with the project."""
        if serif is None or sans is None:
            default_serif, default_sans = _packaged_fonts()
            serif, sans = serif or default_serif, sans or default_sans
        return _load(serif, sans)

    @classmethod
    def default(cls) -> FontSet:
        return cls.from_paths()


@functools.lru_cache(maxsize=4)
def _load(serif: Path, sans: Path) -> FontSet:
    for path in (serif, sans):
        if not path.is_file():
            raise FontError(f"找不到字体文件 {path}。{INSTALL_HINT}")
    return FontSet(serif, sans)


def _packaged_fonts() -> tuple[Path, Path]:
    try:
        import pylopdf_fonts_zh_cn as packaged
    except ImportError:
        raise FontError(f"未安装中文字体。{INSTALL_HINT}") from None
    return Path(packaged.serif_path()), Path(packaged.sans_path())


def subsetter_from_bytes(data: bytes) -> Callable[[frozenset[str]], SubsetFont]:
    """Cut subsets from a font file's bytes exactly as `Font.subset` cuts them from its path, given
    `Font.subset_chars` of the text (a store that keeps the font file can recompute a subset)."""
    return CffSubsetter(data).subset
