"""A number and its unit stay on one line ("120 平方米", "≤45 mg/L", "5号"), and so does a short
parenthesis such as a label's unit ("（立方米/日）"): on the licence face and on the pages alike."""

from __future__ import annotations

import re

__all__ = ["unbreakable_spans"]

# Measure words and units written after a number on Chinese licences (longest first).
CJK_UNITS = (
    "平方千米", "平方公里", "平方米", "立方米", "千米", "公里", "厘米", "毫米", "千克", "公斤", "毫升", "千瓦",
    "亿元", "万元", "小时", "分钟", "米", "克", "吨", "升", "元", "人", "个", "号", "层", "室", "间", "台",
    "辆", "份", "项", "年", "月", "日", "天", "岁", "度", "倍", "家", "处", "座", "条", "张",
)
_NUMBER = r"[≤≥<>＜＞约]?\d[\d.,，]*"
_UNIT = r"(?:" + "|".join(CJK_UNITS) + r"|[%‰℃°]|\s?[A-Za-zμ][A-Za-zμ/²³0-9]*(?![A-Za-z0-9]))"
_NUMBER_AND_UNITS = _NUMBER + r"(?:" + _UNIT + r")+(?:/(?:" + "|".join(CJK_UNITS) + r"))?"
_SHORT_PARENTHESIS = r"（[^（）\n]{1,8}）"
UNBREAKABLE = re.compile(f"{_SHORT_PARENTHESIS}|{_NUMBER_AND_UNITS}")


def unbreakable_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` must not break: each number with its units, each short parenthesis."""
    return [found.span() for found in UNBREAKABLE.finditer(text)]
