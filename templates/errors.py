"""Errors of the templates package. Messages are zh-CN: department staff read them.

    TemplateError (ValueError)
    ├── SpecError        a licence-type or template definition is wrong (names each problem)
    ├── ImageError       an uploaded image is not an image, too large, or a decompression bomb
    ├── FontError        no CJK font, or a character the font cannot draw (never tofu)
    └── LayoutError      a value does not fit its box even at the smallest font size
"""

from __future__ import annotations

__all__ = ["FontError", "ImageError", "LayoutError", "MissingGlyphError", "SpecError", "TemplateError"]


class TemplateError(ValueError):
    pass


class SpecError(TemplateError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("；".join(problems))


class ImageError(TemplateError):
    pass


class FontError(TemplateError):
    pass


class MissingGlyphError(FontError):
    """Text (a field value, a template's fixed text) has a character the fonts cannot show: the
    author's input, not the operator's installation."""


class LayoutError(TemplateError):
    pass
