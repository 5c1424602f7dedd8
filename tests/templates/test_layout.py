"""The layout engine: wrapping, shrinking, alignment, overflow and font coverage."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from templates.errors import FontError, LayoutError
from templates.fonts import FontSet
from templates.layout import HANGING, PT_MM, LicenceFace, TextRun, build_layout, check_fits, make_qr, sample_face
from templates.layout_spec import Box, TemplateSpec
from templates.spec import LicenceTypeSpec, parse_model
from tests.templates.template_examples import EXAMPLE_NAMES, example_spec

USCC = "11350100MB00000100"


def one_field_type(placement: dict[str, Any], field: dict[str, Any] | None = None) -> LicenceTypeSpec:
    """A type with a holder name, a holder code and one field `value` placed as given."""
    value_field = {"key": "value", "label": "内容", "type": "long_text", "max_length": 400, **(field or {})}
    data = {
        "code": "11100000MA0000001Q009",
        "name": "测试证",
        "defining_authority": {"name": "测试部", "uscc": "11100000MA0000001Q"},
        "issuers": [USCC],
        "issuer_level": "city",
        "holder": {"category": "legal_person", "code_types": ["001"], "name_field": "name", "code_field": "code"},
        "validity": {"kind": "long_term"},
        "fields": [
            {"key": "name", "label": "名称", "type": "text", "max_length": 10},
            {"key": "code", "label": "代码", "type": "text", "max_length": 18},
            value_field,
        ],
        "template": {
            "page": {"size": "A4-landscape"},
            "background": {"design": "blue"},
            "fields": [
                {"field": "name", "box": {"x": 20, "y": 20, "w": 100, "h": 8}},
                {"field": "code", "box": {"x": 20, "y": 30, "w": 100, "h": 8}},
                {"field": "value", **placement},
            ],
            "qr": {"box": {"x": 250, "y": 20, "w": 30, "h": 30}},
            "seal": {"box": {"x": 240, "y": 150, "w": 40, "h": 40}},
        },
    }
    return parse_model(LicenceTypeSpec, data)


def layout_value(fonts: FontSet, placement: dict[str, Any], value: str) -> list[TextRun]:
    spec = one_field_type(placement)
    assert spec.template is not None
    face = LicenceFace(values={"name": "甲", "code": "1", "value": value}, meta={}, qr_url="https://e.example/v/1")
    layout = build_layout(spec, spec.template, None, face, fonts)
    runs = [run for run in layout.runs if run.text not in {"甲", "1"}]
    assert layout.texts["value"] == value
    return runs


def test_long_text_wraps_inside_its_box(fonts: FontSet) -> None:
    box = {"x": 30, "y": 50, "w": 60, "h": 60}
    text = "热食类食品制售；冷食类食品制售；自制饮品制售（不含自酿酒）" * 2
    runs = layout_value(fonts, {"box": box, "font_size": 12}, text)
    assert len(runs) > 2
    assert "".join(r.text for r in runs) == text
    for run in runs:
        # Closing punctuation may hang past the edge (GB/T 15834 practice), nothing else.
        hanging = run.advances[-1] if run.text[-1] in HANGING else 0.0
        assert run.x >= 30 - 1e-6 and run.x + run.width - hanging <= 90 + 1e-6
        assert run.baseline - 0.88 * run.size_mm >= 50 and run.baseline + 0.12 * run.size_mm <= 110 + 1e-6
    baselines = [r.baseline for r in runs]
    assert baselines == sorted(baselines)


def test_long_values_shrink_down_to_the_minimum(fonts: FontSet) -> None:
    box = {"x": 30, "y": 50, "w": 60, "h": 12}
    runs = layout_value(fonts, {"box": box, "font_size": 12, "min_font_size": 7}, "证" * 30)
    assert all(7 <= r.size < 12 for r in runs)
    with pytest.raises(LayoutError, match="「内容」内容过长：字号缩小到 7 磅仍放不下"):
        layout_value(fonts, {"box": box, "font_size": 12, "min_font_size": 7}, "证" * 200)


def test_single_line_value_is_centred_vertically(fonts: FontSet) -> None:
    [run] = layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 100, "h": 10}, "font_size": 12}, "短")
    top = run.baseline - 0.88 * run.size_mm
    assert top - 50 == pytest.approx(60 - (run.baseline + 0.12 * run.size_mm))


@pytest.mark.parametrize(("align", "expected_x"), [("left", 30.0), ("center", None), ("right", None)])
def test_alignment(fonts: FontSet, align: str, expected_x: float | None) -> None:
    [run] = layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 100, "h": 10}, "align": align}, "居中对齐")
    width = 4 * 12 * PT_MM
    assert run.width == pytest.approx(width)
    if align == "left":
        assert run.x == pytest.approx(30)
    elif align == "center":
        assert run.x + width / 2 == pytest.approx(80)
    else:
        assert run.x + width == pytest.approx(130)


def test_latin_words_stay_whole_and_punctuation_hangs(fonts: FontSet) -> None:
    text = "执行《污水排入城镇下水道水质标准》（GB/T 31962-2015）B级标准。化学需氧量≤500 mg/L。"
    runs = layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 40, "h": 60}, "font_size": 11}, text)
    lines = [r.text for r in runs]
    assert any("31962-2015" in line for line in lines)
    assert not any(line[0] in "，。、；：）》" for line in lines)


def test_label_column(fonts: FontSet) -> None:
    runs = layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 100, "h": 30}, "label_width": 25}, "证" * 40)
    label, *values = runs
    assert label.text == "内容" and label.font == "sans" and label.x == pytest.approx(30)
    assert all(v.x >= 55 - 1e-6 for v in values)
    assert label.baseline == pytest.approx(values[0].baseline)


def test_empty_optional_value_prints_nothing(fonts: FontSet) -> None:
    assert layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 100, "h": 10}}, "") == []


def test_character_missing_from_the_font_is_an_error_not_tofu(fonts: FontSet) -> None:
    with pytest.raises(FontError, match=r"「内容」含字体无法显示的字符 「\ue000」\(U\+E000\)"):
        layout_value(fonts, {"box": {"x": 30, "y": 50, "w": 100, "h": 10}}, "正常\ue000")


def test_laid_out_text_is_remembered_by_everything_it_depends_on(fonts: FontSet) -> None:
    """Text laid out once is reused (issue 24), but only for the same text, box, style and font:
    a value, a box or a size that differs lays out again, and a value that does not fit still fails
    after the same box has held a shorter one."""
    box = {"x": 30, "y": 50, "w": 60, "h": 12}
    first = layout_value(fonts, {"box": box, "font_size": 12}, "证" * 10)
    assert layout_value(fonts, {"box": box, "font_size": 12}, "证" * 10) == first
    assert layout_value(fonts, {"box": box, "font_size": 12}, "证" * 11) != first
    assert layout_value(fonts, {"box": {**box, "x": 31}, "font_size": 12}, "证" * 10) != first
    assert layout_value(fonts, {"box": box, "font_size": 11}, "证" * 10) != first
    assert layout_value(fonts, {"box": box, "font_size": 12, "align": "right"}, "证" * 10) != first
    assert layout_value(fonts, {"box": box, "font_size": 12, "colour": "#FF0000"}, "证" * 10) != first
    assert layout_value(fonts, {"box": box, "font_size": 12, "line_spacing": 2}, "证" * 30) != layout_value(
        fonts, {"box": box, "font_size": 12}, "证" * 30
    )
    with pytest.raises(LayoutError, match="内容过长"):
        layout_value(fonts, {"box": box, "font_size": 12, "min_font_size": 7}, "证" * 200)
    with pytest.raises(FontError):
        layout_value(fonts, {"box": box, "font_size": 12}, "证" * 9 + "\ue000")


def test_check_fits_uses_the_longest_allowed_values(fonts: FontSet) -> None:
    spec = one_field_type({"box": {"x": 30, "y": 50, "w": 60, "h": 10}, "font_size": 12})
    assert spec.template is not None
    with pytest.raises(LayoutError, match=r"按字段允许的最长内容检验版面未通过.*max_length"):
        check_fits(spec, spec.template, fonts)
    roomy = one_field_type({"box": {"x": 30, "y": 50, "w": 150, "h": 100}, "font_size": 10}, {"max_length": 100})
    assert roomy.template is not None
    check_fits(roomy, roomy.template, fonts)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_fit_worst_case(fonts: FontSet, name: str) -> None:
    spec = example_spec(name)
    assert spec.template is not None
    check_fits(spec, spec.template, fonts)
    layout = build_layout(spec, spec.template, None, sample_face(spec), fonts)
    assert layout.runs and layout.qr.modules


def test_qr_too_dense_for_its_box_is_refused() -> None:
    with pytest.raises(LayoutError, match="二维码内容太长"):
        make_qr("https://e.example/" + "x" * 1500, Box(x=0, y=0, w=15, h=15))


def test_qr_rectangles_cover_exactly_the_dark_modules() -> None:
    qr = make_qr("https://e.example/v/1", Box(x=10, y=20, w=30, h=30))
    dark = sum(sum(row) for row in qr.modules)
    assert sum(round(w / qr.module_mm) for _, _, w, _ in qr.dark_rectangles()) == dark
    for x, y, w, h in qr.dark_rectangles():
        assert x > 10 and x + w < 40 and y > 20 and y + h < 50


def test_placing_a_template_from_another_type_fails(fonts: FontSet) -> None:
    spec = example_spec("food-business-licence")
    template: TemplateSpec | None = example_spec("drainage-permit").template
    assert template is not None
    with pytest.raises(LayoutError, match="不存在的字段"):
        build_layout(spec, template, None, sample_face(spec), fonts)


POLLUTANTS = (
    "化学需氧量（COD）≤500 mg/L；悬浮物（SS）≤400 mg/L；氨氮（以N计）≤45 mg/L；动植物油≤100 mg/L；pH值6.5～9.5。"
)


@pytest.mark.parametrize("width", [22, 30, 40, 50, 60, 80])
def test_a_number_keeps_its_unit_and_a_parenthesis_stays_whole(fonts: FontSet, width: float) -> None:
    from templates.layout import _break_lines

    font = fonts.get("sans")
    for text in (POLLUTANTS, "经营面积120平方米，排水量（立方米/日）350，位于五四路100号"):
        lines = _break_lines(text, font, 3.5, 0, width)
        assert "".join(lines) == text
        joints = [(a[-1:], b[:1]) for a, b in itertools.pairwise(lines)]
        for end, start in joints:
            assert start not in HANGING, lines  # closing punctuation hangs, never starts a line
            assert not (end.isdigit() and start in "平立米号mg个"), lines
            assert not (end == "（" or start == "）"), lines
        for unit in ("≤45 mg/L", "120平方米", "（立方米/日）", "100号"):
            if unit in text:
                assert any(unit in line for line in lines), (unit, lines)
