"""Licence-type and template definitions: every mistake a department can make is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from keys.errors import InvalidCodeError
from templates.errors import SpecError
from templates.layout_spec import TemplateSpec
from templates.spec import FaceField, FieldType, LicenceTypeSpec, check_template, parse_model, validate_type_code
from tests.templates.template_examples import EXAMPLE_NAMES, example_data, example_spec


def food() -> dict[str, Any]:
    return copy.deepcopy(example_data("food-business-licence"))


def problems_of(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse_model(LicenceTypeSpec, data)
    assert caught.value.problems
    return str(caught.value)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_are_valid(name: str) -> None:
    spec = example_spec(name)
    assert spec.template is not None
    check_template(spec, spec.template)


def test_three_examples_cover_the_issue() -> None:
    specs = [example_spec(name) for name in EXAMPLE_NAMES]
    assert {s.holder.category for s in specs} >= {"legal_person", "natural_person"}
    assert any(any(f.type is FieldType.PHOTO for f in s.fields) for s in specs)
    assert any(any(f.type is FieldType.LONG_TEXT and f.longest >= 300 for f in s.fields) for s in specs)


def test_type_code_check_character() -> None:
    assert validate_type_code("11100000000013338W011") == "11100000000013338W011"
    with pytest.raises(InvalidCodeError, match="校验位"):
        validate_type_code("11100000000013338X011")
    with pytest.raises(InvalidCodeError, match="21位"):
        validate_type_code("11100000000013338W01")
    with pytest.raises(InvalidCodeError, match="后3位"):
        validate_type_code("11100000000013338W0A1")


def test_wrong_check_character_in_spec_is_named() -> None:
    data = food()
    data["code"] = data["code"][:17] + "X" + data["code"][18:]
    message = problems_of(data)
    assert "code" in message and "校验位" in message


def test_type_code_must_start_with_defining_authority() -> None:
    data = food()
    data["defining_authority"]["uscc"] = "11100000MA0000002U"
    assert "定义机关" in problems_of(data)


def test_wrong_uscc_of_issuer() -> None:
    data = food()
    data["issuers"] = ["11350100MB00000101"]
    message = problems_of(data)
    assert "issuers" in message and "校验位" in message


def test_unknown_keys_are_named() -> None:
    data = food()
    data["colour"] = "red"
    data["fields"][0]["lable"] = "x"
    message = problems_of(data)
    assert "colour：未知的键" in message
    assert "fields.0.lable：未知的键" in message


def test_unknown_field_type() -> None:
    data = food()
    data["fields"][2]["type"] = "signature"
    message = problems_of(data)
    assert "fields.2.type" in message and "取值无效" in message


def test_duplicate_field_key() -> None:
    data = food()
    data["fields"][3]["key"] = data["fields"][2]["key"]
    assert "重复" in problems_of(data)


def test_pattern_that_does_not_compile() -> None:
    data = food()
    data["fields"][0]["pattern"] = "[unclosed"
    assert "正则表达式" in problems_of(data)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "enum", "max_length": None}, "须列出 values"),
        ({"values": ["a"]}, "只有 enum"),
        ({"min_length": 9, "max_length": 3}, "min_length 大于 max_length"),
        ({"type": "date", "max_length": 3}, "长度限制"),
        ({"example": "x" * 41}, "最多 40 个字符"),
        ({"key": "Bad-Key"}, "fields.0.key"),
    ],
)
def test_field_schema_errors(change: dict[str, Any], expected: str) -> None:
    data = food()
    data["fields"][0].update(change)
    assert expected in problems_of(data)


def test_holder_fields_must_exist() -> None:
    data = food()
    data["holder"]["code_field"] = "nope"
    assert "holder.code_field" in problems_of(data)


def test_unsupported_holder_code_type() -> None:
    data = food()
    data["holder"]["code_types"] = ["414"]
    assert "414" in problems_of(data)


def test_validity_policy() -> None:
    data = food()
    data["validity"] = {"kind": "fixed_term"}
    assert "years 或 months" in problems_of(data)
    data["validity"] = {"kind": "long_term", "years": 3}
    assert "不能设置" in problems_of(data)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t["fields"].append(dict(t["fields"][1])), "重复放置"),
        (lambda t: t["fields"].pop(1), "没有在模板中放置"),
        (lambda t: t["fields"].append({"field": "ghost", "box": {"x": 30, "y": 10, "w": 20, "h": 5}}), "ghost"),
        (lambda t: t["fields"][0]["box"].update({"x": 290}), "超出页面"),
        (lambda t: t["fields"][0]["box"].update({"x": 215, "y": 130}), "与印章位置重叠"),
        (lambda t: t["qr"]["box"].update({"w": 20}), "正方形"),
        (lambda t: t["qr"]["box"].update({"w": 10, "h": 10}), "至少 12 mm"),
        (lambda t: t.update({"background": {"design": "green", "image": "a.png"}}), "之一"),
        (lambda t: t.update({"background": {"design": "purple"}}), "background.design"),
        (lambda t: t.update({"page": {"size": "A4-landscape", "width_mm": 100}}), "只能给出"),
        (lambda t: t["fields"][0].update({"label_width": 500}), "label_width"),
    ],
)
def test_template_errors(mutate: Any, expected: str) -> None:
    data = food()
    mutate(data["template"])
    assert expected in problems_of(data)


def test_template_version_checked_against_its_type() -> None:
    spec = example_spec("food-business-licence")
    other = example_spec("vocational-qualification").template
    assert other is not None
    with pytest.raises(SpecError, match="没有在模板中放置"):
        check_template(spec, other)
    template = parse_model(TemplateSpec, food()["template"])
    check_template(spec, template)


def test_photo_field_must_be_placed_as_photo() -> None:
    data = copy.deepcopy(example_data("vocational-qualification"))
    del data["template"]["photo"]
    assert "照片字段 photo 没有在模板中放置" in problems_of(data)


def field(**kwargs: Any) -> FaceField:
    return parse_model(FaceField, {"key": "k", "label": "标签", **kwargs})


@pytest.mark.parametrize(
    ("definition", "value", "stored"),
    [
        ({"type": "text", "max_length": 5}, " 张三 ", "张三"),
        ({"type": "date"}, "2026-02-28", "2026-02-28"),
        ({"type": "date_range"}, "2026-01-01/2030-12-31", "2026-01-01/2030-12-31"),
        ({"type": "number", "min_value": 0, "max_value": 100}, "99.5", "99.5"),
        ({"type": "enum", "values": ["甲", "乙"]}, "乙", "乙"),
        ({"type": "long_text"}, "第一行\n第二行", "第一行\n第二行"),
    ],
)
def test_values_accepted(definition: dict[str, Any], value: str, stored: str) -> None:
    assert field(**definition).check_value(value) == stored


@pytest.mark.parametrize(
    ("definition", "value", "message"),
    [
        ({"type": "text", "max_length": 2}, "张三丰", "最多 2 个字符"),
        ({"type": "text", "min_length": 2}, "张", "至少 2"),
        ({"type": "text"}, "两\n行", "不能换行"),
        ({"type": "long_text"}, "制表\t符", r"控制字符 U\+0009"),
        ({"type": "text", "pattern": "[0-9]{3}"}, "12a", "格式不符合"),
        ({"type": "date"}, "2026-02-30", "日期无效"),
        ({"type": "date_range"}, "2026-01-01", "起始日期/截止日期"),
        ({"type": "date_range"}, "2026-01-02/2026-01-01", "早于"),
        ({"type": "number"}, "abc", "应为数字"),
        ({"type": "number"}, "NaN", "应为数字"),
        ({"type": "number", "max_value": 10}, "11", "不能大于 10"),
        ({"type": "enum", "values": ["甲"]}, "丙", "可选：甲"),
        ({"type": "photo"}, "x", "照片"),
        ({"type": "text"}, True, "应为文本"),
    ],
)
def test_values_refused_with_reason(definition: dict[str, Any], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        field(**definition).check_value(value)


def test_printed_forms() -> None:
    assert field(type="date").printed("2026-11-02") == "2026年11月2日"
    assert field(type="date_range").printed("2026-01-01/2030-12-31") == "2026年1月1日至2030年12月31日"
